"""Who may use the web page and the JSON API: web accounts, API tokens and their two roles.

An *administrator* may do everything; a *viewer* sees states, expiry and reasons and changes
nothing. A person signs in with an account's name and password; a program presents an API token.
Either way the request acts as a `Principal`.

This module holds the vocabulary and the rules for names and passwords; it does no I/O. Passwords
are kept only as argon2id hashes and API tokens only as SHA-256 digests (`services.accounts`).
No rule text ever contains a password or a token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from tokenpost.errors import FieldProblem, ValidationError
from tokenpost.secret import Secret
from tokenpost.text import N_, Text

NAME_MAX: Final = 64
PASSWORD_MIN: Final = 12
PASSWORD_MAX: Final = 1024
_NAME: Final = re.compile(r"[A-Za-z0-9._@-]{1,64}")

NAME_RULE: Final = N_(
    "must be 1 to 64 characters, each a letter A-Z or a-z, a digit, '.', '_', '@' or '-'"
)
PASSWORD_LENGTH_RULE: Final = N_("must be 12 to 1024 characters long")
PASSWORD_BLANK_RULE: Final = N_("must not be white space only")


class Role(StrEnum):
    """What an account or an API token may do."""

    ADMIN = "administrator"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Account:
    """A web account, as listed: never its password or hash."""

    name: str
    role: Role
    created_at: float


@dataclass(frozen=True, slots=True)
class ApiTokenInfo:
    """An API token, as listed: never the token itself (shown once, when created)."""

    name: str
    role: Role
    created_at: float


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting on a request, for the web page and the API, and how they proved it."""

    name: str
    role: Role
    via: Literal["password", "api_token"]

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


def is_valid_name(name: str) -> bool:
    """True for 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '@', '-'."""
    return _NAME.fullmatch(name) is not None


def name_problems(name: str) -> tuple[FieldProblem, ...]:
    """The rule an account or API token name breaks, if any (field ``name``)."""
    return () if is_valid_name(name) else (FieldProblem("name", NAME_RULE),)


def password_problems(password: Secret) -> tuple[FieldProblem, ...]:
    """The rules a password breaks, if any (field ``password``); never quotes the password."""
    value = password.reveal()
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        return (FieldProblem("password", PASSWORD_LENGTH_RULE),)
    if not value.strip():
        return (FieldProblem("password", PASSWORD_BLANK_RULE),)
    return ()


def check_account(name: str, password: Secret | None = None) -> None:
    """Raises ValidationError naming each field (``name``, ``password``) and the rule it breaks.

    `password` None checks the name alone."""
    problems = name_problems(name)
    if password is not None:
        problems += password_problems(password)
    if problems:
        raise ValidationError(problems, subject=Text("the web account"))


def check_password(password: Secret) -> None:
    """Raises ValidationError (field ``password``) when the password breaks a rule."""
    problems = password_problems(password)
    if problems:
        raise ValidationError(problems, subject=Text("the web account"))


def check_token_name(name: str) -> None:
    """Raises ValidationError (field ``name``) when an API token name breaks the rule."""
    problems = name_problems(name)
    if problems:
        raise ValidationError(problems, subject=Text("the API token"))
