"""Start the sandbox authorization server as a subprocess and drive its control API.

Imported by tests in-process, so it imports only the standard library and httpx: the sandbox's
Flask and authlib stay in the subprocess (and their warnings out of `-W error`).

    process = start_sandbox(tmp_dir)            # waits for ready.json
    control = SandboxControl(process.ready.issuer, process.ready.ca_file)
    control.config(device_interval=0)
    control.approve(user_code, user="alice@example.test")
    control.stats().refresh_replays
    process.stop()
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
DEFAULT_USER = "alice@example.test"


class SandboxError(RuntimeError):
    """The sandbox did not start, or a control call failed."""


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    client_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class SandboxClients:
    """The fixed clients the sandbox registers (from ready.json)."""

    public: str
    app: ClientCredentials
    mailserver: ClientCredentials


@dataclass(frozen=True, slots=True)
class Ready:
    """The contents of DIR/ready.json."""

    issuer: str
    ca_file: Path
    clients: SandboxClients
    pid: int

    @classmethod
    def load(cls, path: Path) -> Ready:
        raw = json.loads(path.read_text(encoding="utf-8"))
        clients = raw["clients"]
        return cls(
            issuer=raw["issuer"],
            ca_file=Path(raw["ca_file"]),
            clients=SandboxClients(
                public=clients["public"],
                app=ClientCredentials(clients["app"]["id"], clients["app"]["secret"]),
                mailserver=ClientCredentials(
                    clients["mailserver"]["id"], clients["mailserver"]["secret"]
                ),
            ),
            pid=int(raw["pid"]),
        )


@dataclass(frozen=True, slots=True)
class RevokedGrant:
    grant_id: str
    client_id: str
    user: str | None
    reason: str  # "revocation" | "replay" | "revoke_user"
    token_kind: str | None  # "access_token" | "refresh_token" | None


@dataclass(frozen=True, slots=True)
class Stats:
    """`GET /control/stats`."""

    requests: Mapping[str, int]
    grants_by_type: Mapping[str, int]
    refresh_replays: int
    revoked: tuple[RevokedGrant, ...]
    active_access_tokens: int

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Stats:
        return cls(
            requests=dict(raw["requests"]),
            grants_by_type=dict(raw["grants_by_type"]),
            refresh_replays=int(raw["refresh_replays"]),
            revoked=tuple(RevokedGrant(**entry) for entry in raw["revoked"]),
            active_access_tokens=int(raw["active_access_tokens"]),
        )


def ca_context(ca_file: Path) -> ssl.SSLContext:
    """A client TLS context that trusts the sandbox CA (and nothing else)."""
    return ssl.create_default_context(cafile=str(ca_file))


class SandboxControl:
    """A synchronous client for the sandbox's `/control/` API."""

    def __init__(self, issuer: str, ca_file: Path, *, timeout: float = 10.0) -> None:
        self._http = httpx.Client(
            base_url=issuer + "/control/", verify=ca_context(ca_file), timeout=timeout
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def reset(self) -> None:
        """Forget every grant, code, fault and counter; restore every knob."""
        self._post("reset", {})

    def approve(self, user_code: str, *, user: str = DEFAULT_USER) -> None:
        self._post("approve", {"user_code": user_code, "user": user})

    def deny(self, user_code: str) -> None:
        self._post("deny", {"user_code": user_code})

    def expire(self, user_code: str) -> None:
        self._post("expire", {"user_code": user_code})

    def config(self, **knobs: object) -> dict[str, Any]:
        """Change knobs (e.g. `device_interval=0`); returns them all."""
        result: dict[str, Any] = self._post("config", knobs)
        return result

    def knobs(self) -> dict[str, Any]:
        result: dict[str, Any] = self._get("config")
        return result

    def fault(self, endpoint: str, kind: str, count: int = 1) -> None:
        """The next `count` requests to `endpoint` get the canned answer `kind`."""
        self._post("fault", {"endpoint": endpoint, "kind": kind, "count": count})

    def revoke_user(self, user: str) -> int:
        """Revoke every grant of `user`; returns how many were live."""
        return int(self._post("revoke_user", {"user": user})["revoked"])

    def stats(self) -> Stats:
        return Stats.from_json(self._get("stats"))

    def _post(self, path: str, body: Mapping[str, object]) -> Any:
        return self._check(self._http.post(path, json=dict(body)))

    def _get(self, path: str) -> Any:
        return self._check(self._http.get(path))

    @staticmethod
    def _check(response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise SandboxError(
                f"control {response.request.url.path}: {response.status_code} {response.text}"
            )
        return response.json()


@dataclass(frozen=True, slots=True)
class Sandbox:
    """What the `sandbox` fixture hands a test: a reset sandbox and its control client."""

    issuer: str
    ca_file: Path
    clients: SandboxClients
    control: SandboxControl

    def url(self, path: str) -> str:
        return self.issuer + path


class SandboxProcess:
    """A running `python -m tokenpost.sandbox authserver`."""

    def __init__(self, process: subprocess.Popen[bytes], ready: Ready, log_path: Path) -> None:
        self.process = process
        self.ready = ready
        self.log_path = log_path

    def stop(self) -> int:
        """SIGTERM, wait, and return the exit status (SIGKILL if it will not stop)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_sandbox(
    directory: Path, *, port: int = 0, timeout: float = READY_TIMEOUT
) -> SandboxProcess:
    """Start the sandbox with `sys.executable` and wait until it has written ready.json.

    Its output goes to DIR/authserver.log (a pipe nobody reads would fill and stall it).

    Raises:
        SandboxError: it exited or did not get ready in `timeout` seconds; the message holds
            the end of its log.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ready_path = directory / "ready.json"
    ready_path.unlink(missing_ok=True)
    log_path = directory / "authserver.log"
    command = [sys.executable, "-m", "tokenpost.sandbox", "authserver", "--dir", str(directory)]
    command += ["--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_env())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_path.exists():
            ready = Ready.load(ready_path)
            if ready.pid == process.pid:
                return SandboxProcess(process, ready, log_path)
        if process.poll() is not None:
            raise SandboxError(
                f"sandbox exited with status {process.returncode}:\n{_tail(log_path)}"
            )
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise SandboxError(f"sandbox not ready after {timeout:.0f} s:\n{_tail(log_path)}")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # The server's own warnings go to its log; they must not turn into errors there.
    env.pop("PYTHONWARNINGS", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:])
