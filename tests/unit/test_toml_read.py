"""Reading the POP options and the [alerts] table: defaults for older files, strict types, rules
named by their path in the document."""

from __future__ import annotations

import pytest

from tokenpost.errors import ValidationError
from tokenpost.settings.document import ConfigDocument, merge_secrets, validate_document
from tokenpost.settings.model import AlertSettings
from tokenpost.settings.toml_io import export_toml
from tokenpost.settings.toml_read import parse_toml

# A file as tokenpost wrote it before POP settings had leave_on_server and command, and before
# [alerts] existed.
OLDER_FILE = """\
[pop.fax]
server = "pop.example.com"
port = 995
security = "tls"
check_interval = 300
auth = "none"
deliver_to = "/var/spool/fax"
"""
ALERTS_TABLE = """
[alerts]
recipients = ["admin@example.com"]
hook = "/usr/local/bin/notify --quiet"
refresh_failing_after = 600
receive_failing_after = 7200
"""


def read_problems(text: str) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        parse_toml(text)
    return [str(p) for p in caught.value.problems]


def test_an_older_file_reads_with_the_defaults() -> None:
    doc = parse_toml(OLDER_FILE)
    (fax,) = doc.pop
    assert (fax.leave_on_server, fax.command) == (False, None)
    assert doc.alerts is None  # the stored alert settings stay as they are


def test_pop_options_are_read() -> None:
    text = OLDER_FILE + "leave_on_server = true\ncommand = \"lp -d 'Fax 2'\"\n"
    (fax,) = parse_toml(text).pop
    assert (fax.leave_on_server, fax.command) == (True, "lp -d 'Fax 2'")


def test_the_alerts_table_is_read() -> None:
    doc = parse_toml(OLDER_FILE + ALERTS_TABLE)
    assert doc.alerts == AlertSettings(
        recipients=("admin@example.com",),
        hook="/usr/local/bin/notify --quiet",
        refresh_failing_after=600,
        receive_failing_after=7200,
    )


def test_an_empty_alerts_table_is_the_defaults() -> None:
    assert parse_toml("[alerts]\n").alerts == AlertSettings()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("leave_on_server = 1\n", "pop.fax.leave_on_server: must be true or false"),
        ('leave_on_server = "yes"\n', "pop.fax.leave_on_server: must be true or false"),
        ("command = ['lpr']\n", "pop.fax.command: must be a string"),
        ('command = ""\n', "pop.fax.command: must not be empty"),
        ('command = "bin/print"\n', "pop.fax.command: the program (first word) must be"),
        ('command = "lpr \'x"\n', "pop.fax.command: must be quoted as in a shell"),
        ('command = "lpr\\nrm -rf /"\n', "pop.fax.command: must not contain line breaks or NUL"),
    ],
)
def test_bad_pop_options_are_named(text: str, problem: str) -> None:
    (found,) = read_problems(OLDER_FILE + text)
    assert found.startswith(problem)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('["admin@example.com"]', '"admin@example.com"', "alerts.recipients: must be a list"),
        ('["admin@example.com"]', '["admin"]', "alerts.recipients: each must be an e-mail"),
        ("= 600", '= "10m"', "alerts.refresh_failing_after: must be an integer"),
        ("= 600", "= 59", "alerts.refresh_failing_after: must be an integer from 60 to 604800"),
        ("= 7200", "= 604801", "alerts.receive_failing_after: must be an integer from 60"),
        ("= 7200", "= true", "alerts.receive_failing_after: must be an integer"),
        ('"/usr/local/bin/notify --quiet"', '"./notify"', "alerts.hook: the program"),
        ('"/usr/local/bin/notify --quiet"', "42", "alerts.hook: must be a string"),
        ("hook =", "hooks =", "alerts.hooks: unknown key"),
    ],
)
def test_bad_alert_keys_are_named(old: str, new: str, problem: str) -> None:
    assert old in ALERTS_TABLE
    (found,) = read_problems(ALERTS_TABLE.replace(old, new, 1))
    assert found.startswith(problem)


def test_alerts_must_be_a_table() -> None:
    assert read_problems("alerts = 1\n") == ["alerts: must be a table"]


def test_too_many_recipients() -> None:
    addresses = ", ".join(f'"a{i}@example.com"' for i in range(21))
    assert read_problems(f"[alerts]\nrecipients = [{addresses}]\n") == [
        "alerts.recipients: at most 20 addresses"
    ]


def test_all_problems_of_alerts_and_pop_at_once() -> None:
    text = OLDER_FILE + 'command = "a\'b"\n' + ALERTS_TABLE.replace("= 600", "= 1")
    assert [p.split(":")[0] for p in read_problems(text)] == [
        "pop.fax.command",
        "alerts.refresh_failing_after",
    ]


def test_a_command_is_never_quoted_in_a_problem() -> None:
    # An argument may be a password: the rule names the field, not the value.
    problems = read_problems(OLDER_FILE + 'command = "print --password \'hunter2"\n')
    assert problems
    assert not any("hunter2" in p for p in problems)


def test_alerts_round_trip_and_survive_a_merge() -> None:
    doc = parse_toml(OLDER_FILE + ALERTS_TABLE)
    assert parse_toml(export_toml(doc)) == doc
    merged = merge_secrets(doc, ConfigDocument(alerts=AlertSettings(hook="old")))
    assert merged.alerts == doc.alerts
    validate_document(merged)


def test_the_default_alerts_are_exported_in_full() -> None:
    text = export_toml(ConfigDocument(alerts=AlertSettings()))
    assert text.endswith(
        "\n[alerts]\nrecipients = []\nrefresh_failing_after = 3600\nreceive_failing_after = 3600\n"
    )
