"""`tokenpost send`: a message with attachments through the SMTP setting (scan to e-mail).

Exit codes: 0 sent; 1 the server, the network or authentication failed (reason on stderr, and
what to change for a policy refusal; a message over the server's size limit is refused before it
is uploaded, with both sizes); 2 bad usage: no recipient, a bad address or header value (the field
and its rule), an unreadable file, a text that is not UTF-8, plaintext refused.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

import click

from tokenpost.cli.context import CliContext, pass_cli
from tokenpost.cli.translated import command

if TYPE_CHECKING:
    from tokenpost.mime import Draft
    from tokenpost.wiring import App

# Attachments smaller than this together are sent without a progress bar.
PROGRESS_FROM_BYTES: Final = 1024 * 1024
# A message text is read whole into memory; a larger text belongs in an attachment.
MAX_BODY_BYTES: Final = 10 * 1024 * 1024


@command()
@click.option("--to", "to", multiple=True, metavar="ADDRESS", help="Recipient (repeatable).")
@click.option("--cc", "cc", multiple=True, metavar="ADDRESS", help="Copy to (repeatable).")
@click.option("--bcc", "bcc", multiple=True, metavar="ADDRESS", help="Blind copy to (repeatable).")
@click.option("--subject", default="", help="Subject line.")
@click.option("--body", default=None, help="Message text.")
@click.option(
    "--body-file",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    default=None,
    help="Read the message text (UTF-8) from a file, '-' for standard input.",
)
@click.option(
    "--allow-plaintext",
    is_flag=True,
    help="Allow security none for a server on loopback (local test or relay servers only).",
)
@click.argument("files", nargs=-1, type=click.Path(path_type=Path), metavar="[FILE]...")
@pass_cli
def send(
    ctx: CliContext,
    *,
    to: tuple[str, ...],
    cc: tuple[str, ...],
    bcc: tuple[str, ...],
    subject: str,
    body: str | None,
    body_file: Path | None,
    allow_plaintext: bool,
    files: tuple[Path, ...],
) -> None:
    """Send FILEs as attachments (and a text) from the SMTP setting's sender address."""
    from tokenpost.adapters.outgoing_files import open_attachment
    from tokenpost.errors import MailPolicyError, UsageError
    from tokenpost.mime import Draft
    from tokenpost.text import translate

    _ = ctx.gettext
    if body is not None and body_file is not None:
        raise click.UsageError(_("--body and --body-file cannot be used together"))
    if not (to or cc or bcc):
        raise UsageError("to: at least one recipient is needed (--to, --cc or --bcc)")
    text = body if body_file is None else _read_body(body_file)
    attachments = tuple(open_attachment(path) for path in files)
    draft = Draft(to, cc, bcc, subject, text or "", attachments)

    try:
        message_id = _send(ctx, draft, allow_plaintext)
    except MailPolicyError as refusal:
        click.echo(_("tokenpost: error: {message}").format(message=refusal.translate(_)), err=True)
        click.echo(_("What to do: {fix}").format(fix=translate(refusal.fix, _)), err=True)
        # SystemExit, not click's Exit: with standalone_mode=False click would drop its code.
        sys.exit(refusal.exit_code)
    click.echo(_("Message sent: {message_id}").format(message_id=message_id))


def _send(ctx: CliContext, draft: Draft, allow_plaintext: bool) -> str:
    from tokenpost.mime import base64_size

    total = sum(base64_size(attachment.size) for attachment in draft.attachments)
    with _progress(total) as on_progress:

        async def work(app: App) -> str:
            sender = app.sender()
            return await sender.send(
                draft, allow_plaintext=allow_plaintext, on_progress=on_progress
            )

        return ctx.run(work)


def _read_body(path: Path) -> str:
    """The text of `--body-file` (standard input for "-"): UTF-8, at most MAX_BODY_BYTES.

    Raises:
        UsageError: the file cannot be read, is larger, or is not UTF-8 text (naming the file
            and the first byte that is not).
    """
    from tokenpost.adapters.outgoing_files import shown_path
    from tokenpost.errors import UsageError

    shown = shown_path(path)
    try:
        if str(path) == "-":
            raw = sys.stdin.buffer.read(MAX_BODY_BYTES + 1)
        else:
            with path.open("rb") as file:
                raw = file.read(MAX_BODY_BYTES + 1)
    except OSError as error:
        raise UsageError(
            "--body-file {path}: cannot be read ({reason})",
            path=shown,
            reason=error.strerror or type(error).__name__,
        ) from None
    if len(raw) > MAX_BODY_BYTES:
        raise UsageError(
            "--body-file {path}: larger than {limit} MiB; send a longer text as an attachment",
            path=shown,
            limit=MAX_BODY_BYTES // (1024 * 1024),
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(
            "--body-file {path}: must be UTF-8 text (byte {offset} is not)",
            path=shown,
            offset=error.start,
        ) from None


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for a large message on a terminal; else no callback."""
    if total < PROGRESS_FROM_BYTES or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("send", total=total)

        def advance(written: int) -> None:
            bar.update(task, completed=min(written, total))

        yield advance
