"""The ids of the four token states and their labels, apart from the states themselves, so that
what shows a state's name (`i18n`, `--help`) does not import the state dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from tokenpost.text import N_


class StateId(StrEnum):
    NOT_ACQUIRED = "not_acquired"
    WAITING_FOR_AUTHORIZATION = "waiting_for_authorization"
    ACQUIRED = "acquired"
    INVALID = "invalid"


# The device manual's label of each state (DESIGN.md "Token state"): the English msgids, shown
# translated by `i18n.state_label` ("Abgerufen"…). A contract: never reword one.
LABELS: Final[Mapping[StateId, str]] = MappingProxyType(
    {
        StateId.NOT_ACQUIRED: N_("Not acquired"),
        StateId.WAITING_FOR_AUTHORIZATION: N_("Waiting for authorization"),
        StateId.ACQUIRED: N_("Acquired"),
        StateId.INVALID: N_("Invalid"),
    }
)
