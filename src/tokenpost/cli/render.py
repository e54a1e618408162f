"""Terminal output: the status table, the authorization prompt with its QR code, a countdown.

Plain text on purpose: `token status` must start fast (bench/startup.py), so no rich here.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from tokenpost.text import Gettext, translate

if TYPE_CHECKING:
    from tokenpost.services.authorize import Prompt
    from tokenpost.services.status import SettingStatus


def format_expiry(when: float | None) -> str:
    if when is None:
        return "-"
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")


def status_table(rows: Sequence[SettingStatus], lang: str, _: Gettext) -> str:
    """Aligned columns: Setting, State, Account, Provider, Expires, Reason."""
    from tokenpost.i18n import state_label

    header = [_("Setting"), _("State"), _("Account"), _("Provider"), _("Expires"), _("Reason")]
    body = [
        [
            r.setting_id,
            state_label(r.state, lang) if r.state else f"({r.auth})",
            r.account or "-",
            r.provider or "-",
            format_expiry(r.expires_at),
            status_reason(r, _),
        ]
        for r in rows
    ]
    if not body:
        return _("(no settings: see 'tokenpost smtp set' and 'tokenpost pop add')")
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header) - 1)]
    lines = []
    for line in [header, *body]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])]
        lines.append("  ".join([*cells, line[-1]]).rstrip())
    return "\n".join(lines)


def status_reason(row: SettingStatus, _: Gettext) -> str:
    """The Reason column: the state's reason, and for a pending re-authorization the token it
    keeps in force (or the reason that token is invalid)."""
    from tokenpost.tokens.state_id import StateId

    parts = [translate(row.reason, _)] if row.reason is not None else []
    if row.previous_state is StateId.ACQUIRED:
        parts.append(
            _("the previous token stays in force until {when}").format(
                when=format_expiry(row.previous_expires_at)
            )
        )
    elif row.previous_state is StateId.INVALID:
        parts.append(
            _("the previous token is invalid: {reason}").format(
                reason=translate(row.previous_reason, _)
            )
        )
    return "; ".join(parts)


def render_prompt(prompt: Prompt, _: Gettext) -> None:
    """Show what the administrator must do, with the address as a QR code for a phone."""
    from tokenpost.services.authorize import DevicePrompt

    if isinstance(prompt, DevicePrompt):
        click.echo(
            _("Open {uri} and enter the code {code}").format(
                uri=prompt.verification_uri, code=prompt.user_code
            )
        )
        qr_target = prompt.verification_uri_complete or prompt.verification_uri
    else:
        click.echo(_("Open this address in a browser: {url}").format(url=prompt.authorization_url))
        qr_target = prompt.authorization_url
    click.echo(qr_text(qr_target))
    if not isinstance(prompt, DevicePrompt) and prompt.can_paste:
        click.echo(
            _(
                "No browser on this host? Open the address on another device and sign in there;"
                " the browser then ends on an address starting with {redirect_uri}, which cannot"
                " load there. Copy that whole address from its address bar, paste it here and"
                " press Enter (until {expires})."
            ).format(redirect_uri=prompt.redirect_uri, expires=format_expiry(prompt.expires_at))
        )
    sys.stdout.flush()


def qr_text(data: str) -> str:
    """The QR code of `data` as text (two rows per character, so it fits a terminal)."""
    import io

    import segno

    out = io.StringIO()
    segno.make(data, error="l").terminal(out=out, compact=True)
    return out.getvalue()


async def countdown(expires_at: float, _: Gettext) -> None:
    """Rewrite one stderr line each second until cancelled. A terminal that went away (an SSH
    session dropped) ends it quietly."""
    import asyncio

    try:
        while True:
            remaining = max(0, int(expires_at - time.time()))
            text = _("Waiting for authorization… {remaining} left").format(
                remaining=f"{remaining // 60}:{remaining % 60:02d}"
            )
            sys.stderr.write("\r" + text + " " * 4)
            sys.stderr.flush()
            await asyncio.sleep(1)
    except OSError:
        return
    finally:
        with contextlib.suppress(OSError):
            sys.stderr.write("\n")
            sys.stderr.flush()
