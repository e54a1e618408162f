"""The rules of web account and API token names and of passwords; the roles and principals."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.accounts import (
    NAME_RULE,
    PASSWORD_BLANK_RULE,
    PASSWORD_LENGTH_RULE,
    Principal,
    Role,
    check_account,
    check_password,
    check_token_name,
    is_valid_name,
    name_problems,
    password_problems,
)
from tokenpost.errors import FieldProblem, UsageError, ValidationError
from tokenpost.i18n import translator
from tokenpost.secret import Secret

NAME_CHARS = string.ascii_letters + string.digits + "._@-"


@given(st.text(alphabet=NAME_CHARS, min_size=1, max_size=64))
def test_names_of_the_allowed_characters_up_to_64_are_valid(name: str) -> None:
    assert is_valid_name(name)
    assert name_problems(name) == ()


@given(st.text(alphabet=NAME_CHARS, min_size=65, max_size=200))
def test_names_longer_than_64_are_refused(name: str) -> None:
    assert name_problems(name) == (FieldProblem("name", NAME_RULE),)


@given(st.text(min_size=1, max_size=64).filter(lambda n: any(c not in NAME_CHARS for c in n)))
def test_names_with_any_other_character_are_refused(name: str) -> None:
    assert not is_valid_name(name)


@pytest.mark.parametrize("name", ["", "a b", "a\nb", "ä", "x/y", "a:b", "admin\x00", "\u0661"])
def test_these_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_account(name)
    assert caught.value.problems == (FieldProblem("name", NAME_RULE),)
    assert isinstance(caught.value, UsageError)
    assert caught.value.exit_code == 2


@given(st.text(min_size=12, max_size=1024).filter(lambda p: p.strip() != ""))
def test_passwords_of_12_to_1024_characters_not_blank_are_valid(password: str) -> None:
    assert password_problems(Secret(password)) == ()


@given(st.text(max_size=11))
def test_passwords_shorter_than_12_are_refused(password: str) -> None:
    assert password_problems(Secret(password)) == (FieldProblem("password", PASSWORD_LENGTH_RULE),)


def test_passwords_longer_than_1024_are_refused() -> None:
    assert password_problems(Secret("x" * 1025)) == (
        FieldProblem("password", PASSWORD_LENGTH_RULE),
    )
    assert password_problems(Secret("x" * 1024)) == ()


@given(st.text(alphabet=" \t\n\r\u00a0\u2003", min_size=12, max_size=40))
def test_white_space_only_passwords_are_refused(password: str) -> None:
    assert password_problems(Secret(password)) == (FieldProblem("password", PASSWORD_BLANK_RULE),)


def test_every_problem_is_reported_at_once_and_never_quotes_the_password() -> None:
    with pytest.raises(ValidationError) as caught:
        check_account("bad name", Secret("short-pw"))
    assert [p.field for p in caught.value.problems] == ["name", "password"]
    assert "short-pw" not in str(caught.value)
    assert "short-pw" not in repr(caught.value)


def test_the_rules_are_in_german_too() -> None:
    german = translator("de").gettext
    with pytest.raises(ValidationError) as caught:
        check_password(Secret("          "))
    text = caught.value.translate(german)
    assert text != str(caught.value)
    assert "password" in text  # the field keeps its option name
    with pytest.raises(ValidationError) as token_name:
        check_token_name("no spaces please")
    assert token_name.value.translate(german) != str(token_name.value)


def test_a_principal_is_admin_only_as_administrator() -> None:
    assert Principal("a", Role.ADMIN, "password").is_admin
    assert not Principal("v", Role.VIEWER, "api_token").is_admin
    assert Role("viewer") is Role.VIEWER
    assert Role.ADMIN.value == "administrator"
