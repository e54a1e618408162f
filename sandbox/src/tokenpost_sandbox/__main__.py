"""``python -m tokenpost_sandbox authserver --dir DIR [--port N]``: run the authorization server.

Creates ``DIR/ca.pem`` and a server certificate for 127.0.0.1 signed by it (`certs`), and the
control API's random key in ``DIR/control.key`` (0600); listens with HTTPS on 127.0.0.1 only,
then writes ``DIR/ready.json`` (0600) atomically (so a reader never sees half of it)::

    {"issuer": "https://127.0.0.1:PORT", "ca_file": ".../ca.pem", "pid": N,
     "control_key_file": ".../control.key",
     "verification_uri": "https://127.0.0.1:PORT/activate", "demo_password": "...",
     "clients": {"public": "tokenpost-test",
                 "app": {"id": "tokenpost-app", "secret": "..."},
                 "mailserver": {"id": "mailserver", "secret": "..."}}}

A person approves device codes at ``/activate`` (and, with the `browser_decision` knob
``interactive``, signs in at ``/authorize``) as the demo account: the user is the `browser_user`
knob, the password the random ``demo_password``; both are printed on those pages.

SIGTERM or SIGINT stops it cleanly (exit status 0). The mail peers: ``smtpserver`` and
``popserver --dir DIR --maildir M [--authserver-dir A]`` (see `tokenpost_sandbox.popserver`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import uvicorn

from tokenpost.secret import Secret
from tokenpost_sandbox.authserver import create_app
from tokenpost_sandbox.certs import write_tls_files
from tokenpost_sandbox.control import KEY_FILE
from tokenpost_sandbox.store import (
    APP_CLIENT_ID,
    MAILSERVER_CLIENT_ID,
    PUBLIC_CLIENT_ID,
    SandboxStore,
    make_clients,
)

READY_FILE = "ready.json"
HOST = "127.0.0.1"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tokenpost_sandbox")
    commands = parser.add_subparsers(dest="command", required=True)
    auth = commands.add_parser("authserver", help="the OAuth 2.0 authorization server")
    auth.add_argument("--dir", type=Path, required=True, help="where to write certs and ready.json")
    auth.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free)")
    smtp = commands.add_parser("smtpserver", help="the SMTP submission server (aiosmtpd)")
    smtp.add_argument("--dir", type=Path, required=True, help="ready.json, knobs, messages, stats")
    smtp.add_argument("--authserver-dir", type=Path, required=True, help="the authserver's --dir")
    pop = commands.add_parser("popserver", help="the POP3 server (STLS and POP3S) over a Maildir")
    pop.add_argument("--dir", type=Path, required=True, help="ready.json, knobs.json, TLS files")
    pop.add_argument("--maildir", type=Path, required=True, help="the Maildir to serve")
    pop.add_argument("--authserver-dir", type=Path, help="the authserver's --dir (introspection)")
    pop.add_argument("--port", type=int, default=0, help="POP3 with STLS port (0: any free)")
    pop.add_argument("--tls-port", type=int, default=0, help="POP3S port (0: any free)")
    args = parser.parse_args(argv)
    if args.command == "popserver":
        from tokenpost_sandbox.popserver import run_popserver

        return run_popserver(
            args.dir, args.maildir, args.authserver_dir, port=args.port, tls_port=args.tls_port
        )
    if args.command == "smtpserver":
        from tokenpost_sandbox.smtpserver import run_smtpserver

        return run_smtpserver(args.dir, args.authserver_dir)
    return run_authserver(args.dir, args.port)


def run_authserver(directory: Path, port: int) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit status."""
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory / READY_FILE
    ready.unlink(missing_ok=True)
    tls = write_tls_files(directory)
    app_secret, mail_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    control_key, control_key_file = secrets.token_urlsafe(32), directory / KEY_FILE
    _write_secret(control_key_file, control_key)
    # Shown on the sign-in pages themselves; random so that no page of an earlier run works.
    demo_password = "-".join(secrets.token_hex(2) for _ in range(3))
    store = SandboxStore(make_clients(Secret(app_secret), Secret(mail_secret)))

    # Bind first: the issuer names the port, and the app needs the issuer.
    listener = socket.create_server((HOST, port))
    issuer = f"https://{HOST}:{listener.getsockname()[1]}"
    config = uvicorn.Config(
        create_app(store, issuer, Secret(control_key), Secret(demo_password)),
        ssl_certfile=tls.cert_file,
        ssl_keyfile=tls.key_file,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)

    # uvicorn catches SIGTERM and SIGINT while it serves, shuts down, then raises the signal
    # again under the handlers it found: these make that a clean exit (status 0).
    def ignore(signum: int, frame: FrameType | None) -> None:
        pass

    signal.signal(signal.SIGTERM, ignore)
    signal.signal(signal.SIGINT, ignore)

    async def serve() -> None:
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            if serving.done():
                await serving
                return
            await asyncio.sleep(0.01)
        _write_atomically(
            ready,
            {
                "issuer": issuer,
                "ca_file": str(tls.ca_file.resolve()),
                "clients": {
                    "public": PUBLIC_CLIENT_ID,
                    "app": {"id": APP_CLIENT_ID, "secret": app_secret},
                    "mailserver": {"id": MAILSERVER_CLIENT_ID, "secret": mail_secret},
                },
                "control_key_file": str(control_key_file.resolve()),
                "verification_uri": issuer + "/activate",
                "demo_password": demo_password,
                "pid": os.getpid(),
            },
        )
        print(f"sandbox authorization server at {issuer}", file=sys.stderr, flush=True)  # noqa: T201  (the process's one status line)
        await serving

    asyncio.run(serve())
    listener.close()
    return 0


def _write_secret(path: Path, value: str) -> None:
    """Write `value` to `path`, readable by this user only (0600 even if the file existed)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(value)


def _write_atomically(path: Path, content: dict[str, object]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(content, out, indent=2)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


if __name__ == "__main__":
    sys.exit(main())
