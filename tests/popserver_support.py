"""The sandbox POP3 server for tests: in-process (same event loop) or as a subprocess.

harness = await start_pop_harness(tmp_path, tokens={"alice@example.test": "tok"})
harness.set_knobs(style=Style.EXCHANGE)
harness.add_message(b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
harness.setting(Security.TLS)                       # a PopSetting pointing at it
await harness.close()

process = start_popserver(directory, maildir, authserver_dir)   # waits for ready.json
process.stop()
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from peer_process import start_sandbox_peer, stop_process
from tokenpost.secret import Secret
from tokenpost.settings.model import AuthMethod, PopSetting, Security
from tokenpost_sandbox.certs import write_tls_files
from tokenpost_sandbox.popknobs import PopKnobs
from tokenpost_sandbox.popserver import PopServer


class PopHarness:
    """A `PopServer` in the test's event loop, with TLS files from its own CA."""

    def __init__(self, directory: Path, tokens: Mapping[str, str]) -> None:
        self.directory = directory
        self.maildir = directory / "Maildir"
        self.tls = write_tls_files(directory)
        self.ca_file = self.tls.ca_file
        self.tokens = dict(tokens)
        self.knobs = PopKnobs()
        self.token_checks: list[str] = []
        self.server = PopServer(
            self.maildir, knobs=lambda: self.knobs, check_token=self._check, tls=self.tls
        )
        self.port = 0
        self.tls_port = 0
        self._serial = 0

    async def _check(self, user: str, token: Secret) -> bool:
        self.token_checks.append(user)
        expected = self.tokens.get(user)
        return expected is not None and token == Secret(expected)

    def set_knobs(self, **changes: Any) -> None:
        self.knobs = replace(self.knobs, **changes)

    def add_message(self, content: bytes, *, sub: str = "new") -> Path:
        self._serial += 1
        path = self.maildir / sub / f"{1_700_000_000 + self._serial}.M{self._serial}P1.sandbox"
        path.write_bytes(content)
        return path

    def messages(self) -> list[Path]:
        return sorted(p for sub in ("new", "cur") for p in (self.maildir / sub).iterdir())

    def setting(
        self,
        security: Security,
        *,
        auth: AuthMethod = AuthMethod.OAUTH2,
        ca_file: Path | None = None,
        password: str | None = None,
    ) -> PopSetting:
        port = self.tls_port if security is Security.TLS else self.port
        return PopSetting(
            name="sandbox",
            server="127.0.0.1",
            port=port,
            security=security,
            check_interval=60,
            auth=auth,
            deliver_to=str(self.directory / "delivered"),
            account="alice@example.test",
            password=None if password is None else Secret(password),
            ca_file=str(ca_file or self.ca_file),
        )

    async def close(self) -> None:
        await self.server.close()


async def start_pop_harness(directory: Path, tokens: Mapping[str, str]) -> PopHarness:
    harness = PopHarness(directory, tokens)
    harness.port, tls_port = await harness.server.start()
    assert tls_port is not None
    harness.tls_port = tls_port
    return harness


# --- the subprocess -------------------------------------------------------------------------


class PopserverError(RuntimeError):
    """The POP3 sandbox did not start or stop."""


@dataclass(frozen=True, slots=True)
class PopReady:
    host: str
    port: int
    tls_port: int
    ca_file: Path
    pid: int

    @classmethod
    def load(cls, path: Path) -> PopReady:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls(raw["host"], raw["port"], raw["tls_port"], Path(raw["ca_file"]), raw["pid"])


class PopserverProcess:
    def __init__(self, process: subprocess.Popen[bytes], directory: Path, ready: PopReady) -> None:
        self.process = process
        self.directory = directory
        self.ready = ready
        self.log_path = directory / "popserver.log"

    def set_knobs(self, **knobs: object) -> None:
        path = self.directory / "knobs.json"
        temporary = path.with_name(".knobs.json.tmp")
        temporary.write_text(json.dumps(knobs), encoding="utf-8")
        os.replace(temporary, path)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        return stop_process(self.process)


def start_popserver(
    directory: Path, maildir: Path, authserver_dir: Path | None = None
) -> PopserverProcess:
    """`python -m tokenpost_sandbox popserver`, waiting for its ready.json."""
    arguments = ["--maildir", str(maildir)]
    if authserver_dir is not None:
        arguments += ["--authserver-dir", str(authserver_dir)]
    peer = start_sandbox_peer(
        "popserver", directory, arguments, load=PopReady.load, error=PopserverError
    )
    return PopserverProcess(peer.process, directory, peer.ready)
