"""Start the sandbox SMTP submission server as a subprocess; set its knobs, read what it received.

Imported by tests in-process, so it imports only the standard library and httpx: aiosmtpd stays in
the subprocess (and its warnings out of `-W error`).

    server = start_smtp_sandbox(tmp_dir, authserver_dir)     # waits for ready.json
    server.set_knobs(style="microsoft", policy={"bob@example.test": "tenant"})
    server.messages()[0].envelope["rcpt_tos"]
    server.stats()["auth"]["XOAUTH2"]["success"]
    server.reset()                                           # knobs, messages, stats
    server.stop()

Knobs (absent = default): style "google" | "microsoft"; policy {account: "tenant" | "mailbox" |
"security_defaults"}; basic_retired; passwords {account: password}; static_tokens {account:
token}; reject_rcpt [address]; drop_after_data_bytes N; size_limit N (the SIZE advertised and
enforced; 0: no SIZE extension). stats()["mail_commands"] counts MAIL commands, refused or not;
a message's envelope has its "mail_options" (["SIZE=1234"]).
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from peer_process import READY_TIMEOUT, log_tail, start_sandbox_peer, stop_process
from sandbox_support import DEFAULT_USER, Sandbox

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class SmtpSandboxError(RuntimeError):
    """The SMTP sandbox did not start, or did not answer a request in time."""


@dataclass(frozen=True, slots=True)
class SmtpReady:
    """The contents of DIR/ready.json."""

    host: str
    starttls_port: int
    tls_port: int
    ca_file: Path
    pid: int

    @classmethod
    def load(cls, path: Path) -> SmtpReady:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            host=raw["host"],
            starttls_port=int(raw["starttls_port"]),
            tls_port=int(raw["tls_port"]),
            ca_file=Path(raw["ca_file"]),
            pid=int(raw["pid"]),
        )

    def tls_context(self) -> ssl.SSLContext:
        """A client context that trusts the sandbox CA (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca_file))


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """One accepted message: the bytes after DATA and the envelope the server recorded."""

    number: int
    content: bytes
    envelope: dict[str, Any]


class SmtpSandbox:
    """A running `python -m tokenpost_sandbox smtpserver`."""

    def __init__(self, process: subprocess.Popen[bytes], directory: Path, ready: SmtpReady):
        self.process = process
        self.directory = directory
        self.ready = ready
        self.log_path = directory / "smtpserver.log"

    @property
    def host(self) -> str:
        return self.ready.host

    def set_knobs(self, **knobs: object) -> None:
        """Replace the knobs; every connection opened afterwards uses them."""
        _write_atomically(self.directory / "knobs.json", json.dumps(knobs).encode())

    def messages(self) -> list[ReceivedMessage]:
        """Every complete message received since the last reset, oldest first."""
        found = []
        for envelope_path in sorted((self.directory / "messages").glob("[0-9]*.json")):
            found.append(
                ReceivedMessage(
                    number=int(envelope_path.stem),
                    content=envelope_path.with_suffix(".eml").read_bytes(),
                    envelope=json.loads(envelope_path.read_text(encoding="utf-8")),
                )
            )
        return found

    def stats(self) -> dict[str, Any]:
        """{"auth": {MECH: {outcome: n}}, "connections", "messages_received", …}.

        Outcomes: success, failure, policy, basic_retired, unavailable, aborted, not_offered.
        """
        raw: dict[str, Any] = json.loads((self.directory / "stats.json").read_text("utf-8"))
        return raw

    def auth_count(self, mechanism: str, outcome: str) -> int:
        return int(self.stats()["auth"].get(mechanism, {}).get(outcome, 0))

    def reset(self, timeout: float = 5.0) -> None:
        """Default knobs, no messages, zeroed stats."""
        (self.directory / "knobs.json").unlink(missing_ok=True)
        for path in (self.directory / "messages").iterdir():
            path.unlink()
        before = self.stats()["resets"]
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while self.stats()["resets"] == before:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise SmtpSandboxError(f"stats were not reset:\n{log_tail(self.log_path)}")
            time.sleep(0.01)

    def stop(self) -> int:
        """SIGTERM, wait, and return the exit status (SIGKILL if it will not stop)."""
        return stop_process(self.process)

    def log(self) -> str:
        return log_tail(self.log_path, lines=200)


def start_smtp_sandbox(
    directory: Path, authserver_dir: Path, *, timeout: float = READY_TIMEOUT
) -> SmtpSandbox:
    """Start the server with `sys.executable` and wait until it has written ready.json.

    `authserver_dir` is the running authorization server's directory: the SMTP server checks
    tokens by introspection there and serves its certificate (one CA for the whole sandbox).

    Raises:
        SmtpSandboxError: it exited or did not get ready in `timeout` seconds; the message holds
            the end of its log.
    """
    peer = start_sandbox_peer(
        "smtpserver",
        directory,
        ["--authserver-dir", str(authserver_dir)],
        load=SmtpReady.load,
        error=SmtpSandboxError,
        timeout=timeout,
    )
    return SmtpSandbox(peer.process, directory, peer.ready)


def sandbox_access_token(sandbox: Sandbox, user: str = DEFAULT_USER) -> str:
    """A fresh access token for `user` from the sandbox, by a device flow approved at once."""
    sandbox.control.config(device_interval=0)
    context = ssl.create_default_context(cafile=str(sandbox.ca_file))
    public = sandbox.clients.public
    with httpx.Client(base_url=sandbox.issuer, verify=context, timeout=10) as http:
        started = http.post("/device", data={"client_id": public, "scope": "mail"})
        started.raise_for_status()
        sandbox.control.approve(started.json()["user_code"], user=user)
        form = {"grant_type": DEVICE_GRANT, "device_code": started.json()["device_code"]}
        response = http.post("/token", data={**form, "client_id": public})
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token


def _write_atomically(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)
