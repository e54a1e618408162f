"""The sandbox's knobs: behaviour tests change at run time through `POST /control/config`.

Every knob has a parser that names the rule a bad value breaks; `Knobs.updated` reports every
problem of one request at once, as `tokenpost.errors.ValidationError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Final

from tokenpost.errors import FieldProblem, ValidationError
from tokenpost_sandbox.models import DEFAULT_REDIRECT_URIS, DEFAULT_USER, BrowserDecision


@dataclass(frozen=True, slots=True)
class Knobs:
    """Behaviour the control API may change; `reset` restores these defaults."""

    access_token_lifetime: int = 3600
    omit_expires_in: bool = False
    device_expires_in: int = 600
    device_interval: int = 5
    rotate_refresh_tokens: bool = True
    browser_decision: BrowserDecision = BrowserDecision.APPROVE
    browser_user: str = DEFAULT_USER
    redirect_state_override: str | None = None
    redirect_iss_override: str | None = None
    response_delay: float = 0.0
    redirect_uris: tuple[str, ...] = DEFAULT_REDIRECT_URIS

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["redirect_uris"] = list(self.redirect_uris)
        return out

    def updated(self, changes: Mapping[str, object]) -> Knobs:
        """A copy with `changes` applied; every bad key or value is reported at once.

        Raises:
            ValidationError: an unknown knob, or a value of the wrong type or range.
        """
        problems: list[FieldProblem] = []
        values: dict[str, object] = {}
        for name, raw in changes.items():
            parse = _KNOB_PARSERS.get(name)
            if parse is None:
                problems.append(FieldProblem(name, "is not a knob"))
                continue
            try:
                values[name] = parse(raw)
            except (TypeError, ValueError) as exc:
                problems.append(FieldProblem(name, str(exc)))
        if problems:
            raise ValidationError(problems, subject="config")
        return replace(self, **values)  # type: ignore[arg-type]  # each parser returns its field's type


def _non_negative_int(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ValueError("must be an integer >= 0")
    return raw


def _non_negative_float(raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
        raise ValueError("must be a number >= 0")
    return float(raw)


def _boolean(raw: object) -> bool:
    if not isinstance(raw, bool):
        raise TypeError("must be true or false")
    return raw


def _text(raw: object) -> str:
    if not isinstance(raw, str) or not raw:
        raise TypeError("must be a non-empty string")
    return raw


def _optional_text(raw: object) -> str | None:
    return None if raw is None else _text(raw)


def _decision(raw: object) -> BrowserDecision:
    if raw not in set(BrowserDecision):
        raise ValueError("must be one of: " + ", ".join(BrowserDecision))
    return BrowserDecision(str(raw))


def _uri_list(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(u, str) and u for u in raw):
        raise TypeError("must be a list of URIs")
    return tuple(raw)


_KNOB_PARSERS: Final[Mapping[str, Callable[[object], object]]] = {
    "access_token_lifetime": _non_negative_int,
    "omit_expires_in": _boolean,
    "device_expires_in": _non_negative_int,
    "device_interval": _non_negative_int,
    "rotate_refresh_tokens": _boolean,
    "browser_decision": _decision,
    "browser_user": _text,
    "redirect_state_override": _optional_text,
    "redirect_iss_override": _optional_text,
    "response_delay": _non_negative_float,
    "redirect_uris": _uri_list,
}
