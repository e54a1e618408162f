"""Start the sandbox authorization server as a subprocess and drive its control API.

Imported by tests in-process, so it imports only the standard library and httpx: the sandbox's
authlib, Starlette and uvicorn stay in the subprocess (and their warnings out of `-W error`).

    process = start_sandbox(tmp_dir)            # waits for ready.json
    control = SandboxControl.of(process.ready)    # sends the key from DIR/control.key
    control.config(device_interval=0)
    control.approve(user_code, user="alice@example.test")
    control.stats().refresh_replays
    process.stop()
"""

from __future__ import annotations

import json
import ssl
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from peer_process import READY_TIMEOUT, start_sandbox_peer, stop_process

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
    control_key_file: Path
    verification_uri: str
    demo_password: str
    pid: int

    @classmethod
    def load(cls, path: Path) -> Ready:
        raw = json.loads(path.read_text(encoding="utf-8"))
        clients = raw["clients"]
        return cls(
            issuer=raw["issuer"],
            ca_file=Path(raw["ca_file"]),
            control_key_file=Path(raw["control_key_file"]),
            verification_uri=raw["verification_uri"],
            demo_password=raw["demo_password"],
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
    """A synchronous client for the sandbox's `/control/` API, presenting its key."""

    def __init__(self, issuer: str, ca_file: Path, key: str, *, timeout: float = 10.0) -> None:
        self._http = httpx.Client(
            base_url=issuer + "/control/",
            verify=ca_context(ca_file),
            timeout=timeout,
            headers={"Authorization": f"Bearer {key}"},
        )

    @classmethod
    def of(cls, ready: Ready) -> SandboxControl:
        """A client for the sandbox that wrote `ready`, with the key from its key file."""
        key = ready.control_key_file.read_text(encoding="ascii").strip()
        return cls(ready.issuer, ready.ca_file, key)

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
    demo_password: str  # the sign-in pages' password (the user is the browser_user knob)

    def url(self, path: str) -> str:
        return self.issuer + path


class SandboxProcess:
    """A running `python -m tokenpost_sandbox authserver`."""

    def __init__(self, process: subprocess.Popen[bytes], ready: Ready, log_path: Path) -> None:
        self.process = process
        self.ready = ready
        self.log_path = log_path

    def stop(self) -> int:
        """SIGTERM, wait, and return the exit status (SIGKILL if it will not stop)."""
        return stop_process(self.process)


def start_sandbox(
    directory: Path, *, port: int = 0, timeout: float = READY_TIMEOUT
) -> SandboxProcess:
    """Start the sandbox with `sys.executable` and wait until it has written ready.json.

    Its output goes to DIR/authserver.log.

    Raises:
        SandboxError: it exited or did not get ready in `timeout` seconds; the message holds
            the end of its log.
    """
    peer = start_sandbox_peer(
        "authserver",
        directory,
        ["--port", str(port)],
        load=Ready.load,
        error=SandboxError,
        timeout=timeout,
    )
    return SandboxProcess(peer.process, peer.ready, peer.log_path)
