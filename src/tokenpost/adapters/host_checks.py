"""Checks of setting values on this host's file system: CA files and POP delivery folders.

The settings rules (`settings.validate`) check a path's form only, since the settings core does no
I/O; these checks look at the file system when a setting is saved or imported, so an
administrator learns of a typo or a wrong file then, not at the first TLS handshake or the first
message received. A CA file is loaded by `adapters.tls`, exactly as a connection loads it, and
must hold at least one CA certificate. A delivery folder that does not exist yet is fine (the
first receive creates it); one that exists must be a directory.
"""

from __future__ import annotations

import os
import stat
from typing import Final

from tokenpost.adapters.tls import (
    MISSING_CA_RULE,
    NO_CA_RULE,
    NOT_A_FILE_RULE,
    ca_file_rule,
)
from tokenpost.errors import FieldProblem
from tokenpost.settings.model import PopSetting, Provider, SmtpSetting
from tokenpost.text import N_

__all__ = [
    "MISSING_CA_RULE",
    "NOT_A_DIRECTORY_RULE",
    "NOT_A_FILE_RULE",
    "NO_CA_RULE",
    "UNDER_A_FILE_RULE",
    "FileSystemChecks",
    "ca_file_rule",
    "deliver_to_rule",
]

NOT_A_DIRECTORY_RULE: Final = N_("exists and is not a directory (a delivery folder is needed)")
UNDER_A_FILE_RULE: Final = N_("cannot be created: a part of the path is a file, not a directory")


class FileSystemChecks:
    """`ports.HostChecks` on the local file system."""

    def problems(self, item: Provider | SmtpSetting | PopSetting) -> tuple[FieldProblem, ...]:
        found: list[FieldProblem] = []
        if item.ca_file is not None and item.ca_file.startswith("/"):
            rule = ca_file_rule(item.ca_file)
            if rule is not None:
                found.append(FieldProblem("ca_file", rule))
        if isinstance(item, PopSetting) and item.deliver_to.startswith("/"):
            rule = deliver_to_rule(item.deliver_to)
            if rule is not None:
                found.append(FieldProblem("deliver_to", rule))
        return tuple(found)


def deliver_to_rule(path: str) -> str | None:
    """The rule the delivery folder `path` breaks, or None."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None  # created by the first receive
    except NotADirectoryError:
        return UNDER_A_FILE_RULE
    except OSError:
        return None  # a folder that cannot be looked at now may be usable by `serve`'s user
    return None if stat.S_ISDIR(info.st_mode) else NOT_A_DIRECTORY_RULE
