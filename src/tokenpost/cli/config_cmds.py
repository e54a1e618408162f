"""`config export | import`: all settings as one TOML file, for version control.

Import replaces the settings with the file's. It refuses a file that would remove a provider or a
POP setting unless `--replace` is given (an empty file would remove them all), and revokes the
tokens it discards. The file is read with a size cap (`MAX_DOCUMENT_BYTES`: `/dev/zero` ends at
once) and must be UTF-8.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tokenpost.cli.context import CliContext, pass_cli
from tokenpost.cli.settings_common import echo_damaged, echo_discarded
from tokenpost.cli.translated import group
from tokenpost.errors import UsageError

if TYPE_CHECKING:
    from tokenpost.ports import DamagedRecord, Store
    from tokenpost.settings.document import ConfigDocument


@group()
def config() -> None:
    """Settings as TOML, for version control."""


@config.command("export")
@click.option("--include-secrets", is_flag=True, help="Also write client secrets and passwords.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (created 0600 with --include-secrets) instead of standard output.",
)
@pass_cli
def config_export(ctx: CliContext, include_secrets: bool, output: Path | None) -> None:
    """Write all settings as TOML (to standard output or --output). Tokens are never exported.
    A damaged setting is left out and named on standard error (exit status 1)."""
    from tokenpost.settings.toml_io import export_toml

    _ = ctx.gettext

    async def work(store: Store) -> tuple[ConfigDocument, list[DamagedRecord]]:
        from tokenpost.services.settings import export_document

        return await export_document(store), await store.damaged_records()

    doc, damaged = ctx.read(work)
    text = export_toml(doc, include_secrets=include_secrets, gettext=_)
    if output is None:
        click.echo(text, nl=False)
    else:
        _write_private(output, text, private=include_secrets)
        click.echo(_("Settings written to {path}.").format(path=output), err=True)
    if damaged:
        echo_damaged(ctx, damaged, "")
        click.echo(_("tokenpost: the damaged settings above were not exported."), err=True)
        click.get_current_context().exit(1)


def _write_private(path: Path, text: str, *, private: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


@config.command("import")
@click.argument("file", type=click.Path(path_type=Path, allow_dash=True))
@click.option(
    "--replace",
    is_flag=True,
    help="Also remove the providers and POP settings the file does not have (their tokens are"
    " revoked).",
)
@pass_cli
def config_import(ctx: CliContext, file: Path, replace: bool) -> None:
    """Replace the settings with FILE (TOML; '-' reads standard input). Secrets the file omits
    are kept; tokens the import discards are revoked. Nothing changes if any field is invalid,
    or if the file would remove settings and --replace is not given."""
    from tokenpost.i18n import show

    _ = ctx.gettext
    text = read_settings_file(file)
    result = ctx.run(lambda app: app.settings.import_toml(text, replace=replace))
    for item in result.removed.as_texts():
        click.echo(_("Removed {item}.").format(item=show(item, ctx.lang)))
    echo_discarded(ctx, result.discarded)
    click.echo(_("Settings imported."))


def read_settings_file(path: Path) -> str:
    """The text of a settings file: at most `MAX_DOCUMENT_BYTES`, UTF-8.

    Raises:
        UsageError: it cannot be read, is larger, or is not UTF-8 (one line each, exit 2).
    """
    from tokenpost.settings.toml_read import MAX_DOCUMENT_BYTES

    try:
        if str(path) == "-":
            data = sys.stdin.buffer.read(MAX_DOCUMENT_BYTES + 1)
        else:
            with path.open("rb") as f:
                data = f.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as error:
        raise UsageError(
            "cannot read {path}: {reason}",
            path=str(path),
            reason=error.strerror or type(error).__name__,
        ) from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise UsageError(
            "{path} is larger than {limit} MiB: that is not a settings file",
            path=str(path),
            limit=MAX_DOCUMENT_BYTES >> 20,
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(
            "{path} is not UTF-8 text (byte {offset} is not valid): save it as UTF-8",
            path=str(path),
            offset=error.start,
        ) from None
