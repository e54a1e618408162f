"""Shared fixtures. The sandbox authorization server runs once per session in a subprocess;
each test that asks for `sandbox` gets it reset (no grants, faults, counters; default knobs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dovecot_support import Dovecot, start_dovecot
from sandbox_support import Sandbox, SandboxControl, SandboxProcess, start_sandbox
from smtpserver_support import SmtpSandbox, start_smtp_sandbox


@pytest.fixture(scope="session")
def sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    process = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def _sandbox_control(sandbox_process: SandboxProcess) -> Iterator[SandboxControl]:
    with SandboxControl.of(sandbox_process.ready) as control:
        yield control


@pytest.fixture
def sandbox(sandbox_process: SandboxProcess, _sandbox_control: SandboxControl) -> Sandbox:
    _sandbox_control.reset()
    ready = sandbox_process.ready
    return Sandbox(
        ready.issuer, ready.ca_file, ready.clients, _sandbox_control, ready.demo_password
    )


# --- more shared fixtures go below this line (lead) ---


@pytest.fixture(scope="session")
def smtp_sandbox(
    tmp_path_factory: pytest.TempPathFactory, sandbox_process: SandboxProcess
) -> Iterator[SmtpSandbox]:
    """The sandbox SMTP submission server, checking tokens against the session's sandbox."""
    authserver_dir = sandbox_process.ready.ca_file.parent
    server = start_smtp_sandbox(tmp_path_factory.mktemp("smtpserver"), authserver_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_peer(smtp_sandbox: SmtpSandbox) -> Iterator[SmtpSandbox]:
    """`smtp_sandbox` with default knobs, no messages and zeroed stats."""
    smtp_sandbox.reset()
    yield smtp_sandbox
    # Captured output: pytest shows it only when the test failed.
    print(f"--- smtpserver log ---\n{smtp_sandbox.log()}")


@pytest.fixture(scope="session")
def dovecot(sandbox_process: SandboxProcess) -> Iterator[Dovecot]:
    """A private Dovecot POP3 server checking tokens at the session's sandbox (never skipped)."""
    server = start_dovecot(sandbox_process.ready.ca_file.parent)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dovecot_peer(dovecot: Dovecot) -> Iterator[Dovecot]:
    """`dovecot` with every mailbox emptied."""
    dovecot.clear_mailboxes()
    yield dovecot
    print(f"--- dovecot log ---\n{dovecot.log()}")
