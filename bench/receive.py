"""Receive cost: N messages through tokenpost's receive path against a private Dovecot, vs a
hand-written `poplib` loop against the same Dovecot, in one run.

Target: <= 1.2x. tokenpost's path is the real one: `App.receiver().receive(...)` (encryption
policy, settings from the store, the folder's lock and recovery scan, POP3S, USER/PASS, UIDL,
RETR streamed into the Maildir, fsync, rename, directory fsync, ledger append with fsync, the
attachment check, DELE, QUIT). The baseline is what a careful hand-written client does at the
least: USER/PASS, UIDL, RETR, write the file, fsync, rename into new/, DELE, QUIT. Dovecot's
maildir is refilled before every run; the baseline runs before and after tokenpost and its mean
is used. Both log in with a password (Dovecot's passwd-file), so token work is not measured.

Needs root (Dovecot's mail user) and Debian's Dovecot (scripts/ensure-peers).

    .venv/bin/python bench/receive.py [--count 200] [--size 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import poplib
import shutil
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from dovecot_support import Dovecot, start_dovecot
from sandbox_support import start_sandbox
from tokenpost.secret import Secret
from tokenpost.settings.model import AuthMethod, PopSetting, Security
from tokenpost.wiring import open_app

USER = "bench@example.test"
PASSWORD = "bench-password"  # noqa: S105 - a throwaway account of a private Dovecot


def make_message(n: int, size: int) -> bytes:
    mail = EmailMessage()
    mail["From"] = "sender@example.test"
    mail["To"] = USER
    mail["Subject"] = f"Message {n}"
    mail["Message-ID"] = f"<bench-{n}@example.test>"
    line = f"message {n} " + "lorem ipsum dolor sit amet " * 2 + "\n"
    mail.set_content(line * (size // len(line)))
    return mail.as_bytes().replace(b"\n", b"\r\n")


def refill(dovecot: Dovecot, messages: list[bytes]) -> None:
    dovecot.clear_mailboxes()
    for data in messages:
        dovecot.add_message(USER, data)


def baseline(dovecot: Dovecot, folder: Path) -> float:
    """poplib: USER/PASS, UIDL, RETR, write + fsync + rename, DELE, QUIT."""
    for sub in ("tmp", "new", "cur"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    client = poplib.POP3_SSL(dovecot.host, dovecot.pop3s_port, context=dovecot.tls_context())
    client.user(USER)
    client.pass_(PASSWORD)
    _, listing, _ = client.uidl()
    for entry in listing:
        number, uidl = entry.decode().split()
        _, lines, _ = client.retr(int(number))
        name = f"{time.time_ns()}.{uidl}.bench"
        with open(folder / "tmp" / name, "wb") as out:
            out.write(b"\r\n".join(lines) + b"\r\n")
            out.flush()
            os.fsync(out.fileno())
        os.rename(folder / "tmp" / name, folder / "new" / name)
        client.dele(int(number))
    client.quit()
    return time.perf_counter() - start


async def ours(home: Path, folder: Path, dovecot: Dovecot, count: int) -> float:
    env = {**os.environ, "TOKENPOST_HOME": str(home)}
    async with open_app(home, env) as app:
        setting = PopSetting(
            "bench", dovecot.host, dovecot.pop3s_port, Security.TLS, 300, AuthMethod.PASSWORD,
            str(folder), account=USER, password=Secret(PASSWORD), ca_file=str(dovecot.ca_file),
        )  # fmt: skip
        await app.settings.put_pop(setting)
        receiver = app.receiver()
        start = time.perf_counter()
        report = await receiver.receive("bench")
        elapsed = time.perf_counter() - start
    [row] = report.settings
    assert report.ok, row
    assert (row.fetched, row.deleted) == (count, count), row
    return elapsed


def run(count: int, size: int, work: Path) -> None:
    sandbox = start_sandbox(work / "sandbox")  # Dovecot's OAuth passdb points at it
    try:
        dovecot = start_dovecot(work / "sandbox")
        try:
            dovecot.set_password(USER, PASSWORD)
            messages = [make_message(n, size) for n in range(count)]
            timings = []
            for label in ("base", "ours", "base", "ours", "base"):
                refill(dovecot, messages)
                folder = work / f"mail-{len(timings)}"
                if label == "base":
                    timings.append((label, baseline(dovecot, folder)))
                else:
                    timings.append(
                        (label, asyncio.run(ours(work / "home", folder, dovecot, count)))
                    )
                assert len(os.listdir(folder / "new")) == count
                assert dovecot.maildir_count(USER) == 0
                shutil.rmtree(folder)
        finally:
            dovecot.stop()
    finally:
        sandbox.stop()
    report(count, size, timings)


def report(count: int, size: int, timings: list[tuple[str, float]]) -> None:
    base = [t for label, t in timings if label == "base"]
    mine = [t for label, t in timings if label == "ours"]
    t_base, t_ours = sum(base) / len(base), sum(mine) / len(mine)
    mb = count * size / 1e6
    print(
        f"poplib loop       {count} messages of {size // 1000} KB: {t_base:.2f} s "
        f"({', '.join(f'{t:.2f}' for t in base)}), {mb / t_base:.1f} MB/s"
    )
    print(
        f"tokenpost receive {count} messages of {size // 1000} KB: {t_ours:.2f} s "
        f"({', '.join(f'{t:.2f}' for t in mine)}), {mb / t_ours:.1f} MB/s"
    )
    print(f"ratio {t_ours / t_base:.2f}x (target <= 1.2x)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--size", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(args.count, args.size, Path(tmp))


if __name__ == "__main__":
    main()
