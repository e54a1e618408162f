"""The host checks on the real file system: CA files (loaded by `ssl`) and delivery folders."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import trustme

from tokenpost.adapters.host_checks import (
    MISSING_CA_RULE,
    NO_CA_RULE,
    NOT_A_DIRECTORY_RULE,
    NOT_A_FILE_RULE,
    UNDER_A_FILE_RULE,
    FileSystemChecks,
    ca_file_rule,
    deliver_to_rule,
)
from tokenpost.settings.model import AuthMethod, PopSetting, Preset, Provider, Security

CA = trustme.CA()
LEAF = CA.issue_cert("mail.example.test")
PROVIDER = Provider("p", Preset.MICROSOFT, "client")
POP = PopSetting(
    name="fax",
    server="pop.example.test",
    port=995,
    security=Security.TLS,
    check_interval=300,
    auth=AuthMethod.NONE,
    deliver_to="/nonexistent/fax",
)


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_a_pem_file_with_a_ca_certificate_passes(tmp_path: Path) -> None:
    assert ca_file_rule(write(tmp_path, "ca.pem", CA.cert_pem.bytes())) is None
    # A key before the certificate, as some bundles are written, does not matter.
    mixed = LEAF.private_key_pem.bytes() + CA.cert_pem.bytes()
    assert ca_file_rule(write(tmp_path, "mixed.pem", mixed)) is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a certificate\n",
        b"-----BEGIN CERTIFICATE-----\n",
        LEAF.private_key_pem.bytes(),
        LEAF.cert_chain_pems[0].bytes(),  # a server's own certificate, not a CA's
    ],
    ids=["empty", "text", "truncated", "key only", "leaf only"],
)
def test_a_file_without_a_ca_certificate_is_refused(tmp_path: Path, content: bytes) -> None:
    assert ca_file_rule(write(tmp_path, "ca.pem", content)) == NO_CA_RULE


def test_missing_and_special_files_are_refused(tmp_path: Path) -> None:
    assert ca_file_rule(str(tmp_path / "missing.pem")) == MISSING_CA_RULE
    assert ca_file_rule(str(tmp_path)) == NOT_A_FILE_RULE
    # A device would be read forever (/dev/zero) or holds nothing (/dev/null): never loaded.
    assert ca_file_rule("/dev/zero") == NOT_A_FILE_RULE
    assert ca_file_rule("/dev/null") == NOT_A_FILE_RULE


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_says_why(tmp_path: Path) -> None:
    path = write(tmp_path, "ca.pem", CA.cert_pem.bytes())
    os.chmod(path, 0)
    assert "Permission denied" in str(ca_file_rule(path))


def test_delivery_folders(tmp_path: Path) -> None:
    assert deliver_to_rule(str(tmp_path)) is None
    assert deliver_to_rule(str(tmp_path / "new")) is None  # created by the first receive
    assert deliver_to_rule("/dev/null") == NOT_A_DIRECTORY_RULE
    file = write(tmp_path, "file", b"x")
    assert deliver_to_rule(file) == NOT_A_DIRECTORY_RULE
    assert deliver_to_rule(file + "/fax") == UNDER_A_FILE_RULE


def test_the_port_names_the_fields_and_leaves_relative_paths_to_the_rules(tmp_path: Path) -> None:
    checks = FileSystemChecks()
    empty = write(tmp_path, "empty.pem", b"")
    assert [p.field for p in checks.problems(replace(PROVIDER, ca_file=empty))] == ["ca_file"]
    bad_pop = replace(POP, ca_file=empty, deliver_to="/dev/null")
    assert [p.field for p in checks.problems(bad_pop)] == ["ca_file", "deliver_to"]
    assert checks.problems(replace(POP, ca_file="empty.pem", deliver_to="")) == ()
    assert checks.problems(PROVIDER) == ()
