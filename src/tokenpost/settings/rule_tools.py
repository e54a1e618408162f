"""What the settings rules share: one problem per field, raising them together, path forms.

The settings core does no I/O: a path is checked for its form only (absolute, no control
characters); what the host's file system says is checked by the service (`ports.HostChecks`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Final

from tokenpost.errors import FieldProblem, ValidationError
from tokenpost.text import N_, Text

CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")
NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")

NAME_RULE: Final = N_(
    "must be 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit"
)
PATH_RULE: Final = N_("must be an absolute path, no control characters")


def is_absolute_path(path: str) -> bool:
    """An absolute POSIX path without control characters (its form only: nothing is looked up)."""
    return path.startswith("/") and not CONTROL.search(path)


def path_problems(field: str, path: str | None) -> Iterator[FieldProblem]:
    if path is not None and not is_absolute_path(path):
        yield FieldProblem(field, PATH_RULE)


def one_per_field(problems: Iterable[FieldProblem]) -> tuple[FieldProblem, ...]:
    """The first problem of each field: the most basic rule it breaks, one message per field."""
    first: dict[str, FieldProblem] = {}
    for problem in problems:
        first.setdefault(problem.field, problem)
    return tuple(first.values())


def raise_if(problems: tuple[FieldProblem, ...], *, subject: str | Text) -> None:
    if problems:
        raise ValidationError(problems, subject=subject)
