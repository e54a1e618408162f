"""The alert settings' rules and the command-line syntax shared by the alert hook and a POP
setting's per-message command."""

from __future__ import annotations

import shlex
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.errors import ValidationError
from tokenpost.settings.model import AlertSettings, AuthMethod, PopSetting, Security
from tokenpost.settings.syntax import command_rule, command_words
from tokenpost.settings.validate import alert_problems, pop_problems, validate_alerts

GOOD = AlertSettings(
    recipients=("admin@contoso.com", "ü@bücher.example"),
    hook="/usr/local/bin/notify --channel 'ops room'",
    refresh_failing_after=60,
    receive_failing_after=604800,
)
PLAIN_POP = PopSetting(
    name="print",
    server="pop.example.com",
    port=995,
    security=Security.TLS,
    check_interval=300,
    auth=AuthMethod.NONE,
    deliver_to="/var/spool/print",
)


def alert_fields(alerts: AlertSettings) -> list[str]:
    return [p.field for p in alert_problems(alerts)]


def test_the_defaults_and_a_full_setting_are_valid() -> None:
    validate_alerts(AlertSettings())
    validate_alerts(GOOD)
    validate_alerts(replace(GOOD, recipients=tuple(f"a{i}@example.com" for i in range(20))))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"recipients": tuple(f"a{i}@example.com" for i in range(21))}, "recipients"),
        ({"recipients": ("admin",)}, "recipients"),
        ({"recipients": ("Admin <admin@example.com>",)}, "recipients"),
        ({"recipients": ("admin@example.com", "")}, "recipients"),
        ({"hook": ""}, "hook"),
        ({"hook": "notify\r\nx"}, "hook"),
        ({"hook": "scripts/notify"}, "hook"),
        ({"hook": '"/usr/bin/notify'}, "hook"),
        ({"refresh_failing_after": 59}, "refresh_failing_after"),
        ({"refresh_failing_after": 604801}, "refresh_failing_after"),
        ({"receive_failing_after": 0}, "receive_failing_after"),
        ({"receive_failing_after": -3600}, "receive_failing_after"),
    ],
)
def test_a_bad_alert_field_is_named(changes: dict[str, object], field: str) -> None:
    assert alert_fields(replace(GOOD, **changes)) == [field]  # type: ignore[arg-type]


def test_all_alert_problems_at_once_with_the_subject() -> None:
    bad = AlertSettings(
        recipients=("x",), hook="./a", refresh_failing_after=1, receive_failing_after=1
    )
    with pytest.raises(ValidationError) as caught:
        validate_alerts(bad)
    assert caught.value.subject == "alerts"
    assert [p.field for p in caught.value.problems] == [
        "recipients",
        "hook",
        "refresh_failing_after",
        "receive_failing_after",
    ]
    assert caught.value.exit_code == 2


def test_the_bad_recipient_is_named() -> None:
    (problem,) = alert_problems(replace(GOOD, recipients=("ok@example.com", "not an address")))
    assert str(problem.rule).endswith("'not an address' is not")
    (long_one,) = alert_problems(replace(GOOD, recipients=("x" * 300,)))
    assert len(str(long_one.rule)) < 200


def test_too_many_recipients_is_the_one_message() -> None:
    many = tuple(f"a{i}" for i in range(25))
    assert [str(p.rule) for p in alert_problems(replace(GOOD, recipients=many))] == [
        "at most 20 addresses"
    ]


@given(st.integers(60, 604800), st.integers(60, 604800))
def test_every_delay_in_range_is_accepted(refresh: int, receive: int) -> None:
    assert (
        alert_problems(replace(GOOD, refresh_failing_after=refresh, receive_failing_after=receive))
        == ()
    )


@given(st.integers().filter(lambda n: not 60 <= n <= 604800))
def test_every_delay_out_of_range_is_refused(seconds: int) -> None:
    assert alert_fields(replace(GOOD, refresh_failing_after=seconds)) == ["refresh_failing_after"]
    assert alert_fields(replace(GOOD, receive_failing_after=seconds)) == ["receive_failing_after"]


# -- command lines --------------------------------------------------------------------------------

words = st.text(min_size=1).filter(lambda w: not ({"\r", "\n", "\x00"} & set(w)))
programs = st.one_of(
    st.from_regex(r"[A-Za-z0-9_.+-]{1,20}", fullmatch=True),
    st.from_regex(r"(/[A-Za-z0-9_. -]{1,10}){1,4}", fullmatch=True),
)


@given(programs, st.lists(words, max_size=5))
def test_any_quoted_command_line_is_accepted_and_splits_back(
    program: str, arguments: list[str]
) -> None:
    line = shlex.join([program, *arguments])
    assert command_rule(line) is None
    assert command_words(line) == [program, *arguments]


@given(st.from_regex(r"[A-Za-z0-9_.-]{0,10}/[A-Za-z0-9_./-]{0,10}", fullmatch=True))
def test_a_relative_path_is_not_a_program(program: str) -> None:
    if not program.startswith("/"):
        assert command_rule(shlex.quote(program) + " x") is not None


COMMAND_RULES = {
    "must not be empty",
    "must not contain line breaks or NUL",
    "must be quoted as in a shell: a quote is not closed or a backslash ends it",
    "the program (first word) must be an absolute path or a name without '/'",
}


@given(st.text())
def test_a_command_rule_is_a_fixed_text_never_the_command(line: str) -> None:
    # An argument may be a password: no rule depends on the value beyond which rule it breaks.
    assert command_rule(line) in {*COMMAND_RULES, None}


def test_each_command_rule_is_reachable() -> None:
    found = {command_rule(line) for line in ("", "a\nb", "a 'b", "./a")}
    assert found == COMMAND_RULES


def test_pop_options_are_plain_values() -> None:
    assert pop_problems(replace(PLAIN_POP, leave_on_server=True), {}) == ()
    assert pop_problems(replace(PLAIN_POP, command="lp -d 'Fax 2' --"), {}) == ()
    assert [p.field for p in pop_problems(replace(PLAIN_POP, command="./lp"), {})] == ["command"]
