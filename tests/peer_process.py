"""Test peers as subprocesses: start one with its output in a log file, wait for it, stop it.

Imported in-process by the peer support modules (sandbox_support among them), so it imports only
the standard library.

    peer = start_sandbox_peer("smtpserver", directory, ["--authserver-dir", str(auth_dir)],
                              load=SmtpReady.load, error=SmtpSandboxError)
    peer.process, peer.ready, peer.log_path
    stop_process(peer.process)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


class _NamesItsPid(Protocol):
    @property
    def pid(self) -> int: ...


ReadyT = TypeVar("ReadyT", bound=_NamesItsPid)


@dataclass(frozen=True, slots=True)
class StartedPeer(Generic[ReadyT]):
    """A peer that has written DIR/ready.json with its own pid."""

    process: subprocess.Popen[bytes]
    ready: ReadyT
    log_path: Path


def start_sandbox_peer(
    command: str,
    directory: Path,
    arguments: Sequence[str],
    *,
    load: Callable[[Path], ReadyT],
    error: Callable[[str], Exception],
    timeout: float = READY_TIMEOUT,
) -> StartedPeer[ReadyT]:
    """Run `python -m tokenpost_sandbox COMMAND --dir DIR ARGUMENTS`; wait for its ready.json.

    Its output goes to DIR/COMMAND.log (a pipe nobody reads would fill and stall it). A
    ready.json is the peer's only once it names the new process's pid: one left by an earlier
    run in DIR does not count.

    Raises:
        `error(message)`: it exited or did not get ready in `timeout` seconds (then it is
            killed); the message holds the end of its log.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ready_path = directory / "ready.json"
    ready_path.unlink(missing_ok=True)
    log_path = directory / f"{command}.log"
    log_path.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "tokenpost_sandbox", command, "--dir", str(directory)]
    process = spawn([*argv, *arguments], log_path, env=peer_env())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_path.exists():
            ready = load(ready_path)
            if ready.pid == process.pid:
                return StartedPeer(process, ready, log_path)
        if process.poll() is not None:
            raise error(f"{command} exited with status {process.returncode}:\n{log_tail(log_path)}")
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise error(f"{command} not ready after {timeout:.0f} s:\n{log_tail(log_path)}")


def spawn(
    argv: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` with stdout and stderr appended to `log_path` (`env` None: inherit ours)."""
    # Append mode: a daemon that also writes the file itself must not be overwritten by us.
    with log_path.open("ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM, wait, and return the exit status (SIGKILL if it will not stop in `timeout` s)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def peer_env() -> dict[str, str]:
    """Our environment for a Python peer."""
    env = dict(os.environ)
    # The peer's own warnings go to its log; they must not turn into errors there.
    env.pop("PYTHONWARNINGS", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def log_tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a peer's log (or why there are none)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])
