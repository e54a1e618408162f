"""Shared fixtures. The sandbox authorization server runs once per session in a subprocess;
each test that asks for `sandbox` gets it reset (no grants, faults, counters; default knobs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox_support import Sandbox, SandboxControl, SandboxProcess, start_sandbox


@pytest.fixture(scope="session")
def sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    process = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def _sandbox_control(sandbox_process: SandboxProcess) -> Iterator[SandboxControl]:
    with SandboxControl(sandbox_process.ready.issuer, sandbox_process.ready.ca_file) as control:
        yield control


@pytest.fixture
def sandbox(sandbox_process: SandboxProcess, _sandbox_control: SandboxControl) -> Sandbox:
    _sandbox_control.reset()
    ready = sandbox_process.ready
    return Sandbox(ready.issuer, ready.ca_file, ready.clients, _sandbox_control)


# --- more shared fixtures go below this line (lead) ---
