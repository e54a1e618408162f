"""Reading the settings forms, and showing what the settings service refused beside each field.

The rules are never re-implemented here: a form becomes a settings value as it was typed, and
`SettingsService` checks it exactly as for the CLI. A number that is not a number becomes one no
rule accepts (-1), so the service reports it with the field's own rule text. Problems of fields
the form does not show are listed above the form.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from starlette.datastructures import FormData

from tokenpost.errors import FieldProblem, TokenpostError, ValidationError
from tokenpost.i18n import show
from tokenpost.secret import Secret
from tokenpost.text import Text

E = TypeVar("E", bound=StrEnum)

NOT_A_NUMBER = -1


@dataclass
class Problems:
    """What to show beside each field (`fields`, translated) and above the form (`general`)."""

    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    @classmethod
    def of(cls, error: TokenpostError, lang: str, shown: Collection[str]) -> Problems:
        found = cls()
        if isinstance(error, ValidationError):
            for problem in error.problems:
                # A rule is a msgid or a Text (never data): translated either way.
                rule = show(as_rule(problem), lang)
                if problem.field in shown:
                    found.fields.setdefault(problem.field, rule)
                else:
                    found.general.append(show(problem, lang))
        else:
            found.general.append(show(error, lang))
        return found


def as_rule(problem: FieldProblem) -> Text:
    return problem.rule if isinstance(problem.rule, Text) else Text(problem.rule)


def text(form: FormData, name: str) -> str | None:
    """A text field, None when empty (what the CLI's '' means: not set)."""
    value = form.get(name)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def number(form: FormData, name: str) -> int:
    value = text(form, name)
    try:
        return int(value) if value is not None else NOT_A_NUMBER
    except ValueError:
        return NOT_A_NUMBER


def checked(form: FormData, name: str) -> bool:
    return form.get(name) is not None


def secret(form: FormData, name: str) -> Secret | None:
    """A write-only field: None when left empty (the stored secret is kept by the caller)."""
    value = form.get(name)
    if not isinstance(value, str) or not value:
        return None
    return Secret(value)


def choice(form: FormData, name: str, enum: type[E]) -> E:
    """Raises ValidationError naming the choices when the value is none of them."""
    value = text(form, name) or ""
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        rule = Text("must be one of: {choices}", choices=choices)
        raise ValidationError([FieldProblem(name, rule)]) from None


def scopes(form: FormData, name: str) -> tuple[str, ...] | None:
    value = text(form, name)
    return None if value is None else tuple(value.split())


def values(form: FormData, secrets: Collection[str]) -> dict[str, str]:
    """The form as typed, to show it again with its problems (never the secret fields)."""
    return {k: v for k, v in form.items() if isinstance(v, str) and k not in secrets}
