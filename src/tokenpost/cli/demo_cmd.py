"""`tokenpost demo`: the whole product on loopback in a throw-away directory, for a newcomer.

One command, offline. It makes a temporary directory (0700) and in it:

- the sandbox's authorization server, SMTP server and two POP3 servers (`tokenpost_sandbox`, the
  `demo` extra), each a process of its own with its log file; one throw-away CA (trustme, made by
  the authorization server) for all of them, which tokenpost trusts through the home's CA
  setting (``TOKENPOST_CA_FILE``);
- a tokenpost home with a provider for the sandbox, the SMTP setting and two POP settings (each
  with its own maildrop on its own POP3 server) and the web administrator ``admin`` with a random
  password;
- `tokenpost serve` (web page and daemon) on ``--listen`` (loopback).

The sandbox's SMTP server keeps what it accepts; the demo hands each accepted message on to the
maildrop of the POP setting its recipient names (``fax@example.test`` → POP setting ``fax``), so
a message sent from the web page arrives at a POP setting. Ctrl-C or SIGTERM stops every process
it started and removes the directory.

This is the only tokenpost module that imports the sandbox (an import-linter contract): the
product never does. Without the sandbox installed the command exits 2 and says how to install it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final

import click

from tokenpost.cli.context import CliContext, pass_cli
from tokenpost.cli.translated import command

DEMO_USER: Final = "alice@example.test"  # the sandbox's demo account (its `browser_user`)
ADMIN: Final = "admin"
PROVIDER: Final = "sandbox"
SCOPE: Final = ("mail", "offline_access")
SENDER: Final = "scanner@example.test"
POP_NAMES: Final = ("fax", "office")
READY_TIMEOUT_S: Final = 30.0
SERVE_STOP_S: Final = 25.0  # serve gives work in flight 20 s
PEER_STOP_S: Final = 10.0
HOP_INTERVAL_S: Final = 0.3


def recipient_of(name: str) -> str:
    """The address whose mail arrives at POP setting `name`."""
    return f"{name}@example.test"


class _Stop(BaseException):
    """SIGINT or SIGTERM: stop everything and clean up (a BaseException: no `except Exception`
    on the way swallows it)."""


class DemoError(Exception):
    """A part of the demo did not start, or stopped by itself: `part` names it."""

    def __init__(self, part: str, *, started: bool = False) -> None:
        super().__init__(part)
        self.part = part
        self.started = started


@dataclass
class _Running:
    """What the demo started, so that it can all be stopped and removed."""

    root: Path
    peers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    serve: subprocess.Popen[bytes] | None = None
    forwarder: threading.Thread | None = None

    def stop(self) -> None:
        """Stop serve first (it still uses the peers), then the peers; remove the directory."""
        if self.serve is not None:
            _terminate(self.serve, SERVE_STOP_S)
        for process in reversed(self.peers):
            _terminate(process, PEER_STOP_S)
        if self.forwarder is not None:
            self.forwarder.join(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)


@command()
@click.option(
    "--listen",
    default="127.0.0.1:8025",
    show_default=True,
    metavar="HOST:PORT",
    help="Address of the web page (loopback; port 0: any free port).",
)
@click.option("--lang", "lang", help="Language of the demo and of serve's log: en or de.")
@pass_cli
def demo(ctx: CliContext, *, listen: str, lang: str | None) -> None:
    """Try tokenpost on this machine, offline: a sandbox provider, SMTP and POP3 servers and the
    web page in a throw-away directory. Ctrl-C stops it and removes everything it made."""
    from tokenpost.i18n import resolve_language, translator, use_language

    if lang is not None:
        ctx.lang = resolve_language(lang, os.environ)
        use_language(ctx.lang)
    _ = translator(ctx.lang).gettext
    try:
        import tokenpost_sandbox  # noqa: F401  (the `demo` extra)
    except ImportError:
        click.echo(
            _(
                "tokenpost demo needs the sandbox (the 'demo' extra): pip install "
                "'tokenpost[demo]'; in a checkout, scripts/bootstrap installs it"
            ),
            err=True,
        )
        sys.exit(2)
    from tokenpost.web.server import Listen, check_plain_http

    check_plain_http(Listen.parse(listen), tls=False)  # bad usage ends here, before anything runs

    root = Path(tempfile.mkdtemp(prefix="tokenpost-demo-"))
    running = _Running(root)
    previous = _catch_stop_signals()
    try:
        _run(ctx, running, listen, _)
    except _Stop:
        pass
    except DemoError as error:
        if error.started:
            message = _("tokenpost demo: {part} stopped by itself; the demo stops too.")
        else:
            message = _("tokenpost demo: {part} did not start; the demo stops.")
        click.echo(message.format(part=error.part), err=True)
        tail = _log_tail(root, error.part)  # serve's own lines went to standard error already
        if tail:
            click.echo(tail, err=True)
        _stop_quietly(running, previous)
        sys.exit(1)
    _stop_quietly(running, previous)
    click.echo(_("tokenpost demo stopped; removed {directory}").format(directory=root))


def _run(ctx: CliContext, running: _Running, listen: str, _: Callable[[str], str]) -> None:
    root = running.root
    os.chmod(root, 0o700)
    auth_dir, smtp_dir = root / "authserver", root / "smtp"
    auth = _start_peer(running, "authserver", auth_dir, [])
    ca_file = str(auth["ca_file"])
    smtp = _start_peer(running, "smtpserver", smtp_dir, ["--authserver-dir", str(auth_dir)])
    pops: dict[str, Mapping[str, Any]] = {}
    for name in POP_NAMES:
        directory = root / f"pop-{name}"
        arguments = ["--maildir", str(directory / "Maildir"), "--authserver-dir", str(auth_dir)]
        pops[name] = _start_peer(running, "popserver", directory, arguments)

    home = root / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENPOST_")}
    env |= {"TOKENPOST_HOME": str(home), "TOKENPOST_CA_FILE": ca_file, "TOKENPOST_LANG": ctx.lang}
    admin_password = secrets.token_urlsafe(12)
    _configure(home, env, auth=auth, smtp=smtp, pops=pops, admin_password=admin_password)

    url = _start_serve(running, env, listen, ctx.lang)
    demo_password = str(auth["demo_password"])
    lines = [
        _(
            "tokenpost demo is running. Everything is in {directory}; Ctrl-C stops it and "
            "removes it."
        ),
        "",
        _("  Web page:            {url}"),
        _("  Sign in as:          {admin} / {password}"),
        _("  Provider's sign-in:  {user} / {demo_password} (for [Get Token]; also on that page)"),
        _("  Mail to {fax} arrives at POP setting fax, mail to {office} at POP setting office."),
        _(
            "  The command line:    TOKENPOST_HOME={home} TOKENPOST_CA_FILE={ca} {program} "
            "token status"
        ),
    ]
    values = {
        "directory": root,
        "url": url,
        "admin": ADMIN,
        "password": admin_password,
        "user": DEMO_USER,
        "demo_password": demo_password,
        "fax": recipient_of("fax"),
        "office": recipient_of("office"),
        "home": home,
        "ca": ca_file,
        "program": _program(),
    }
    for line in lines:
        click.echo(line.format(**values))
    sys.stdout.flush()
    maildrops = {recipient_of(name): root / f"pop-{name}" / "Maildir" for name in POP_NAMES}
    hop = _MailHop(smtp_dir / "messages", maildrops)
    while True:
        hop.run_once()
        if running.serve is not None and running.serve.poll() is not None:
            raise DemoError("serve", started=True)
        for process in running.peers:
            if process.poll() is not None:
                raise DemoError(_peer_name(process), started=True)
        time.sleep(HOP_INTERVAL_S)


def _configure(
    home: Path,
    env: Mapping[str, str],
    *,
    auth: Mapping[str, Any],
    smtp: Mapping[str, Any],
    pops: Mapping[str, Mapping[str, Any]],
    admin_password: str,
) -> None:
    """The demo's home: the provider, the SMTP setting, the POP settings, the administrator."""
    import asyncio

    from tokenpost.accounts import Role
    from tokenpost.errors import TokenpostError
    from tokenpost.i18n import show
    from tokenpost.secret import Secret
    from tokenpost.settings.model import (
        AuthMethod,
        Flow,
        PopSetting,
        Preset,
        Provider,
        Security,
        SmtpSetting,
    )
    from tokenpost.wiring import open_app

    async def work() -> None:
        async with open_app(home, env) as app:
            await app.settings.put_provider(
                Provider(
                    name=PROVIDER,
                    preset=Preset.GENERIC,
                    client_id=str(auth["clients"]["public"]),
                    flow=Flow.DEVICE,
                    issuer=str(auth["issuer"]),
                    scope=SCOPE,
                )
            )
            await app.settings.put_smtp(
                SmtpSetting(
                    server=str(smtp["host"]),
                    port=int(smtp["starttls_port"]),
                    security=Security.STARTTLS,
                    timeout=30,
                    sender_name="Scanner",
                    sender_address=SENDER,
                    auth=AuthMethod.OAUTH2,
                    provider=PROVIDER,
                    account=DEMO_USER,
                )
            )
            for name, pop in pops.items():
                await app.settings.put_pop(
                    PopSetting(
                        name=name,
                        server=str(pop["host"]),
                        port=int(pop["tls_port"]),
                        security=Security.TLS,
                        check_interval=300,
                        auth=AuthMethod.OAUTH2,
                        deliver_to=str(home.parent / "delivered" / name),
                        provider=PROVIDER,
                        account=DEMO_USER,
                    )
                )
            await app.accounts.add(ADMIN, Role.ADMIN, Secret(admin_password))

    try:
        asyncio.run(work())
    except TokenpostError as error:
        # The home is made from the sandbox's own answers: a refusal here is a bug to report.
        click.echo(show(error), err=True)
        raise DemoError("home") from None


def _start_peer(
    running: _Running, name: str, directory: Path, arguments: list[str]
) -> Mapping[str, Any]:
    """Run `python -m tokenpost_sandbox NAME --dir DIR ARGUMENTS`; its ready.json."""
    directory.mkdir(parents=True)
    argv = [sys.executable, "-m", "tokenpost_sandbox", name, "--dir", str(directory), *arguments]
    log = directory / f"{name}.log"
    with log.open("ab") as out:
        process = _spawn(argv, stdout=out, stderr=out, env=_peer_env())
    running.peers.append(process)
    ready = directory / "ready.json"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            raw: dict[str, Any] = json.loads(ready.read_text(encoding="utf-8"))
            if raw.get("pid") == process.pid:
                return raw
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise DemoError(name)


def _start_serve(running: _Running, env: Mapping[str, str], listen: str, lang: str) -> str:
    """Start `tokenpost serve`; the web page's address once it answers. Its log goes to our
    standard error."""
    argv = [sys.executable, "-m", "tokenpost", "--lang", lang, "serve", "--listen", listen]
    process = _spawn(argv, stdout=subprocess.PIPE, stderr=None, env=dict(env))
    running.serve = process
    assert process.stdout is not None  # noqa: S101 - stdout=PIPE
    found: list[str] = []
    got_url = threading.Event()

    def forward(stream: IO[bytes]) -> None:
        # serve's own lines (the address) go on to standard error: the demo prints its own.
        for raw in stream:
            line = raw.decode("utf-8", "replace")
            if not found:
                for word in line.split():
                    if word.startswith(("http://", "https://")):
                        found.append(word)
                        got_url.set()
            sys.stderr.write(line)
            sys.stderr.flush()
        got_url.set()

    running.forwarder = threading.Thread(target=forward, args=(process.stdout,), daemon=True)
    running.forwarder.start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not got_url.wait(0.1):
        if time.monotonic() > deadline:
            break
    if not found or not _answers(found[0], deadline):
        raise DemoError("serve")
    return found[0]


def _answers(url: str, deadline: float) -> bool:
    """True once the web page accepts a connection."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(address, timeout=1):
            return True
        time.sleep(0.05)
    return False


class _MailHop:
    """Hands each message the sandbox SMTP server accepted to the maildrops of its recipients
    (messages/NNNNNN.json is the envelope, written after NNNNNN.eml)."""

    def __init__(self, messages: Path, maildrops: Mapping[str, Path]) -> None:
        self._messages = messages
        self._maildrops = {address.casefold(): path for address, path in maildrops.items()}
        self._done: set[str] = set()

    def run_once(self) -> None:
        if not self._messages.is_dir():
            return
        for envelope_path in sorted(self._messages.glob("[0-9]*.json")):
            if envelope_path.stem in self._done:
                continue
            self._done.add(envelope_path.stem)
            try:
                envelope = json.loads(envelope_path.read_text(encoding="utf-8"))
                content = envelope_path.with_suffix(".eml").read_bytes()
            except (OSError, ValueError):
                continue
            targets = {
                self._maildrops[address.casefold()]
                for address in envelope.get("rcpt_tos", [])
                if isinstance(address, str) and address.casefold() in self._maildrops
            }
            for maildir in sorted(targets):
                _deliver(maildir, f"{envelope_path.stem}.demo", content)


def _deliver(maildir: Path, name: str, content: bytes) -> None:
    """Write a message into `maildir`'s tmp/ and rename it into new/ (Maildir's own rule)."""
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    unique = f"{int(time.time())}.M{secrets.token_hex(4)}P{os.getpid()}.{name}"
    temporary = maildir / "tmp" / unique
    temporary.write_bytes(content)
    os.replace(temporary, maildir / "new" / unique)


def _spawn(
    argv: list[str], *, stdout: Any, stderr: Any, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    # A process group of its own: the terminal's Ctrl-C reaches the demo alone, which stops
    # serve before the peers it uses.
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env, process_group=0
    )


def _peer_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENPOST_")}
    env.pop("PYTHONWARNINGS", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _peer_name(process: subprocess.Popen[bytes]) -> str:
    """authserver, smtpserver or popserver: [python, -m, tokenpost_sandbox, NAME, …]."""
    args = process.args
    return str(args[3]) if isinstance(args, list) and len(args) > 3 else "?"


def _log_tail(root: Path, part: str, lines: int = 20) -> str:
    for log in sorted(root.glob(f"*/{part}.log")):
        text = log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])
    return ""


_Handler = Callable[[int, FrameType | None], Any] | int | None


def _catch_stop_signals() -> dict[int, _Handler]:
    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    previous: dict[int, _Handler] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, stop)
    return previous


def _stop_quietly(running: _Running, previous: Mapping[int, _Handler]) -> None:
    """Stop and remove everything; a second Ctrl-C meanwhile does not cut that short."""
    for signum in previous:
        signal.signal(signum, signal.SIG_IGN)
    try:
        running.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _program() -> str:
    """This program as a command that works as written: its absolute path (a checkout's
    `scripts/tokenpost` runs `.venv/bin/tokenpost`, which is not on the PATH)."""
    path = Path(sys.argv[0])
    return shlex.quote(str(path.resolve())) if path.is_file() else "tokenpost"
