"""Sending cost, against stdlib smtplib baselines measured in the same run.

(a) Burst: N small messages over one connection. tokenpost's `Sender.session` (SQLite store,
    token read and decrypted, AUTH, a MIME message built per send) against smtplib with a
    hand-made XOAUTH2 string and `EmailMessage` per send; both over STARTTLS to the sandbox SMTP
    server with the same sandbox token. The baseline runs before and after; its mean is used.
    Target: <= 1.2x.
(b) Large: one message with a 100 MB attachment over implicit TLS, each client in a child process
    of its own: wall time against smtplib (which reads the file and encodes the whole message in
    memory, as a hand-written client does), and tokenpost's peak RSS from `getrusage`.
    Targets: <= 1.2x and <= 150 MB. The server is a sink in a child process that reads in large
    blocks: the sandbox server (aiosmtpd) refuses messages over 32 MiB and reads line by line,
    which would measure the server rather than the clients.

    .venv/bin/python bench/send.py [--count 500] [--size-mb 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from sandbox_support import Ready, SandboxControl, start_sandbox
from smtpserver_support import SmtpSandbox, start_smtp_sandbox
from tokenpost.mime import Draft
from tokenpost.services.authorize import DevicePrompt, Prompt
from tokenpost.settings.model import AuthMethod, Flow, Preset, Provider, Security, SmtpSetting
from tokenpost.tokens.state import Acquired
from tokenpost.wiring import open_app

ACCOUNT = "alice@example.test"
SENDER = "bench@example.test"
TO = "bob@example.test"
BODY = "A short scan-to-e-mail notice.\n" * 5


# --- (a) burst ----------------------------------------------------------------------------------


async def setup_home(home: Path, ready: Ready, peer: SmtpSandbox, control: SandboxControl) -> str:
    """Provider, SMTP setting and a token in `home`; returns the access token."""
    control.config(device_interval=0)
    async with open_app(home, {}) as app:
        await app.settings.put_provider(
            Provider("sbx", Preset.GENERIC, ready.clients.public, flow=Flow.DEVICE,
                     issuer=ready.issuer, scope=("mail.send", "offline_access"),
                     ca_file=str(ready.ca_file))
        )  # fmt: skip
        await app.settings.put_smtp(
            SmtpSetting(peer.host, peer.ready.starttls_port, Security.STARTTLS, 30, "Bench",
                        SENDER, AuthMethod.OAUTH2, provider="sbx", account=ACCOUNT,
                        ca_file=str(peer.ready.ca_file))
        )  # fmt: skip

        async def approve(prompt: Prompt) -> None:
            assert isinstance(prompt, DevicePrompt)
            await asyncio.to_thread(control.approve, prompt.user_code, user=ACCOUNT)

        acquired: Acquired = await app.authorizer.obtain("smtp", approve)
        return acquired.access_token.reveal()


async def ours_burst(home: Path, count: int) -> float:
    async with open_app(home, {}) as app:
        sender = app.sender()
        start = time.perf_counter()
        async with sender.session() as outbox:
            for n in range(count):
                await outbox.send(Draft(to=(TO,), subject=f"Scan {n}", body=BODY))
        return time.perf_counter() - start


def baseline_burst(peer: SmtpSandbox, token: str, count: int) -> float:
    def xoauth2(challenge: bytes | None = None) -> str:
        return f"user={ACCOUNT}\x01auth=Bearer {token}\x01\x01" if not challenge else ""

    start = time.perf_counter()
    with smtplib.SMTP(peer.host, peer.ready.starttls_port, timeout=30) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=str(peer.ready.ca_file)))
        smtp.ehlo()
        smtp.auth("XOAUTH2", xoauth2)
        for n in range(count):
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = SENDER, TO, f"Scan {n}"
            message.set_content(BODY)
            smtp.send_message(message)
    return time.perf_counter() - start


def burst(work: Path, count: int) -> None:
    sandbox = start_sandbox(work / "sandbox")
    try:
        ready = sandbox.ready
        peer = start_smtp_sandbox(work / "smtp", ready.ca_file.parent)
        try:
            with SandboxControl.of(ready) as control:
                token = asyncio.run(setup_home(work / "home", ready, peer, control))
            baseline_burst(peer, token, 20)  # warm-up: imports, caches, the server's first files
            asyncio.run(ours_burst(work / "home", 20))
            peer.reset()
            t_base1 = baseline_burst(peer, token, count)
            t_ours = asyncio.run(ours_burst(work / "home", count))
            t_base2 = baseline_burst(peer, token, count)
            assert len(peer.messages()) == 3 * count, "every message arrived"
        finally:
            peer.stop()
    finally:
        sandbox.stop()
    t_base = (t_base1 + t_base2) / 2
    print(
        f"(a) smtplib + EmailMessage  {count} messages: {t_base:.2f} s "
        f"({t_base1:.2f} s before, {t_base2:.2f} s after), {t_base / count * 1000:.2f} ms each"
    )
    print(
        f"(a) tokenpost Sender.session {count} messages: {t_ours:.2f} s, "
        f"{t_ours / count * 1000:.2f} ms each"
    )
    print(f"(a) ratio {t_ours / t_base:.2f}x (target <= 1.2x)")


# --- (b) one large attachment -------------------------------------------------------------------


async def sink(cert: str, key: str, port_file: Path) -> None:
    """A minimal ESMTP receiver over implicit TLS that counts and discards DATA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 sink ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-sink\r\n250-8BITMIME\r\n250 PIPELINING\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                size = await _discard_data(reader)
                writer.write(f"250 2.0.0 {size} octets\r\n".encode())
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", 0, ssl=context, limit=1 << 20)
    port = server.sockets[0].getsockname()[1]
    written = port_file.with_suffix(".tmp")
    await asyncio.to_thread(written.write_text, str(port))
    await asyncio.to_thread(written.rename, port_file)  # the parent never reads half a number
    async with server:
        await server.serve_forever()


async def _discard_data(reader: asyncio.StreamReader) -> int:
    size, tail = 0, b"\r\n"
    while not tail.endswith(b"\r\n.\r\n"):
        block = await reader.read(1 << 20)
        if not block:
            raise ConnectionError("the client went away mid-DATA")
        size += len(block)
        tail = (tail + block)[-5:]
    return size


async def ours_large(home: Path, port: int, ca_file: str, attachment: Path) -> float:
    from tokenpost.adapters.outgoing_files import open_attachment

    async with open_app(home, {}) as app:
        await app.settings.put_smtp(
            SmtpSetting("127.0.0.1", port, Security.TLS, 120, "Bench", SENDER, AuthMethod.NONE,
                        ca_file=ca_file)
        )  # fmt: skip
        start = time.perf_counter()
        draft = Draft(to=(TO,), subject="large", attachments=(open_attachment(attachment),))
        await app.sender().send(draft)
        return time.perf_counter() - start


def baseline_large(port: int, ca_file: str, attachment: Path) -> float:
    start = time.perf_counter()
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = SENDER, TO, "large"
    message.set_content("large")
    message.add_attachment(
        attachment.read_bytes(), maintype="image", subtype="tiff", filename=attachment.name
    )
    context = ssl.create_default_context(cafile=ca_file)
    with smtplib.SMTP_SSL("127.0.0.1", port, context=context, timeout=120) as smtp:
        smtp.send_message(message)
    return time.perf_counter() - start


def child(kind: str, work: Path, port: int, ca_file: str, attachment: Path) -> None:
    """Run one client in this process; print its time and peak RSS as JSON."""
    if kind == "ours":
        seconds = asyncio.run(ours_large(work / "large-home", port, ca_file, attachment))
    else:
        seconds = baseline_large(port, ca_file, attachment)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_mb": peak_kib / 1024}))


def run_child(kind: str, work: Path, port: int, ca_file: str, attachment: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", kind, "--work", str(work), "--port", str(port),
               "--ca-file", ca_file, "--attachment", str(attachment)]  # fmt: skip
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def large(work: Path, size_mb: int) -> None:
    sandbox = start_sandbox(work / "sandbox-tls")  # only for its certificate and CA
    sandbox.stop()
    tls = work / "sandbox-tls"
    attachment = work / "scan.tif"
    with attachment.open("wb") as out:
        for _ in range(size_mb):
            out.write(os.urandom(1 << 20))
    port_file = work / "sink.port"
    server = subprocess.Popen(
        [sys.executable, __file__, "--sink", str(port_file), "--work", str(tls)],
    )
    try:
        while not port_file.exists():
            time.sleep(0.05)
        port = int(port_file.read_text())
        ca_file = str(tls / "ca.pem")
        run_child("ours", work, port, ca_file, attachment)  # warm-up: home, caches
        base1 = run_child("baseline", work, port, ca_file, attachment)
        ours = run_child("ours", work, port, ca_file, attachment)
        base2 = run_child("baseline", work, port, ca_file, attachment)
    finally:
        server.terminate()
        server.wait()
    t_base = (base1["seconds"] + base2["seconds"]) / 2
    print(
        f"(b) smtplib + EmailMessage  {size_mb} MB attachment: {t_base:.2f} s "
        f"({base1['seconds']:.2f} s before, {base2['seconds']:.2f} s after), "
        f"peak RSS {max(base1['peak_mb'], base2['peak_mb']):.0f} MB"
    )
    print(
        f"(b) tokenpost Sender.send   {size_mb} MB attachment: {ours['seconds']:.2f} s, "
        f"peak RSS {ours['peak_mb']:.0f} MB"
    )
    print(
        f"(b) ratio {ours['seconds'] / t_base:.2f}x (target <= 1.2x), "
        f"peak RSS {ours['peak_mb']:.0f} MB (target <= 150 MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--only", choices=["burst", "large"])
    parser.add_argument("--sink", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ca-file", help=argparse.SUPPRESS)
    parser.add_argument("--attachment", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink is not None:
        asyncio.run(
            sink(str(args.work / "server.pem"), str(args.work / "server-key.pem"), args.sink)
        )
        return
    if args.child is not None:
        child(args.child, args.work, args.port, args.ca_file, args.attachment)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in (None, "burst"):
            burst(work, args.count)
        if args.only in (None, "large"):
            large(work, args.size_mb)


if __name__ == "__main__":
    main()
