"""SubprocessRunner against real processes (the Python interpreter and a small shell script)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from tokenpost.adapters.commands import SubprocessRunner
from tokenpost.errors import OperationError
from tokenpost.ports import CommandRunner

PY = sys.executable


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "script.py"
    path.write_text(body)
    return str(path)


def test_matches_the_port() -> None:
    runner: CommandRunner = SubprocessRunner()
    assert runner is not None


async def test_exit_status_and_combined_output() -> None:
    code = "import sys; print('out'); sys.stdout.flush(); print('err', file=sys.stderr); exit(3)"
    result = await SubprocessRunner().run([PY, "-c", code], timeout=10)
    assert result.returncode == 3
    assert "out" in result.output
    assert "err" in result.output


async def test_arguments_reach_the_command_unchanged_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    tricky = f"a b; touch {marker} $(touch {marker}) `touch {marker}`"
    code = "import sys; print(repr(sys.argv[1:]))"
    result = await SubprocessRunner().run([PY, "-c", code, tricky, "*"], timeout=10)
    assert result.returncode == 0
    assert result.output.strip() == repr([tricky, "*"])
    assert not marker.exists()


async def test_stdin_is_closed() -> None:
    code = "import sys; data = sys.stdin.read(); print(len(data))"
    result = await SubprocessRunner().run([PY, "-c", code], timeout=10)
    assert (result.returncode, result.output.strip()) == (0, "0")


async def test_env_is_added_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENPOST_TEST_INHERITED", "kept")
    code = (
        "import os; print(os.environ['TOKENPOST_TEST_ADDED'],"
        " os.environ['TOKENPOST_TEST_INHERITED'])"
    )
    result = await SubprocessRunner().run(
        [PY, "-c", code], timeout=10, env={"TOKENPOST_TEST_ADDED": "added"}
    )
    assert result.output.strip() == "added kept"


async def test_output_is_bounded_to_its_tail() -> None:
    code = "import sys; sys.stdout.write('x' * 1_000_000 + 'END')"
    result = await SubprocessRunner(tail_bytes=100).run([PY, "-c", code], timeout=10)
    assert result.returncode == 0
    assert len(result.output) == 100
    assert result.output.endswith("xEND")


async def test_timeout_kills_the_command_and_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = _script(
        tmp_path,
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n",
    )
    started = time.monotonic()
    result = await SubprocessRunner().run([PY, script], timeout=1.5)
    assert result.returncode is None
    assert "started" in result.output
    assert time.monotonic() - started < 10
    child = int(pid_file.read_text())
    await _until_gone(child)


async def _until_gone(pid: int) -> None:
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"process {pid} still runs")


async def test_cancellation_kills_the_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    task = asyncio.create_task(SubprocessRunner().run([PY, "-c", code], timeout=60))
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _until_gone(int(pid_file.read_text()))


async def test_missing_command_is_an_operation_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-command"
    with pytest.raises(OperationError, match="no-such-command"):
        await SubprocessRunner().run([str(missing), "--secret-argument"], timeout=5)


async def test_not_executable_is_an_operation_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("#!/bin/sh\necho hi\n")
    path.chmod(0o600)
    with pytest.raises(OperationError) as caught:
        await SubprocessRunner().run([str(path), "hunter2"], timeout=5)
    assert "hunter2" not in str(caught.value)


async def test_empty_command_is_an_operation_error() -> None:
    with pytest.raises(OperationError):
        await SubprocessRunner().run([], timeout=5)


async def test_a_background_grandchild_holding_the_pipe_does_not_hang_us(tmp_path: Path) -> None:
    script = _script(
        tmp_path,
        "import subprocess, sys\n"
        f"subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(30)'])\n"
        "print('parent done', flush=True)\n",
    )
    started = time.monotonic()
    result = await SubprocessRunner().run([PY, script], timeout=20)
    assert result.returncode == 0
    assert "parent done" in result.output
    assert time.monotonic() - started < 15
