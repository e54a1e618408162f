"""The alert mails, in the administrator's language: what happened and what to do.

Each function gives (subject, body) for one kind of alert. The reason is whatever the event
carried (a `Text`, an error or a plain string) and is shown in the mail's language. Bodies name the
commands to run; they never hold a secret (only setting ids and reasons, which never do).
"""

from __future__ import annotations

from datetime import UTC, datetime

from tokenpost.i18n import translator
from tokenpost.text import Gettext, translate


def invalid_mail(lang: str, setting_id: str, reason: object) -> tuple[str, str]:
    """The alert for a token that became Invalid."""
    _ = translator(lang).gettext
    subject = _("tokenpost: the token of {setting} is invalid").format(setting=setting_id)
    body = _(
        "The token of {setting} can no longer be used: {reason}\n\n"
        "Mail that uses this setting stops until a new token is obtained. Delete the token "
        "and obtain it again:\n\n"
        "  tokenpost token delete {setting}\n"
        "  tokenpost token get {setting}\n"
    ).format(setting=setting_id, reason=_reason(reason, _))
    return subject, body


def refresh_failing_mail(
    lang: str, setting_id: str, reason: object, *, since: float, now: float
) -> tuple[str, str]:
    """The alert for refreshing that has failed since `since`."""
    _ = translator(lang).gettext
    subject = _("tokenpost: refreshing the token of {setting} keeps failing").format(
        setting=setting_id
    )
    body = _(
        "Refreshing the token of {setting} has failed since {since} ({minutes} min).\n"
        "Last error: {reason}\n\n"
        "The token is kept and refreshing is retried. When the current access token expires, "
        "mail that uses this setting stops. Check the connection to the provider (network, "
        "proxy, firewall, the provider's status).\n"
    ).format(**_failing_fields(_, setting_id, reason, since=since, now=now))
    return subject, body


def receive_failing_mail(
    lang: str, setting_id: str, reason: object, *, since: float, now: float
) -> tuple[str, str]:
    """The alert for receiving that has failed since `since`."""
    _ = translator(lang).gettext
    subject = _("tokenpost: receiving mail for {setting} keeps failing").format(setting=setting_id)
    body = _(
        "Receiving mail for {setting} has failed since {since} ({minutes} min).\n"
        "Last error: {reason}\n\n"
        "Messages stay on the server until receiving works again. Run the connection test to "
        "see which step fails:\n\n"
        "  tokenpost check {setting}\n"
    ).format(**_failing_fields(_, setting_id, reason, since=since, now=now))
    return subject, body


def store_unwritable_mail(lang: str, setting_id: str, reason: object) -> tuple[str, str]:
    """The alert for a refreshed token that cannot be written to the store (it is kept in
    memory, so mail goes on; a restart before the store is writable again loses it)."""
    _ = translator(lang).gettext
    subject = _("tokenpost: the new token of {setting} cannot be stored").format(setting=setting_id)
    body = _(
        "The token of {setting} was refreshed, but tokenpost cannot write it to its store: "
        "{reason}\n\n"
        "Mail goes on: the new token is kept in memory, and storing it is retried. Make the "
        "store writable again: free space on the disk of tokenpost's home directory, and check "
        "that tokenpost may write its files there.\n\n"
        "Until the token is stored, do not restart tokenpost: a restart loses the token kept in "
        "memory, and the setting then needs a new authorization:\n\n"
        "  tokenpost token get {setting}\n"
    ).format(setting=setting_id, reason=_reason(reason, _))
    return subject, body


def _failing_fields(
    _: Gettext, setting_id: str, reason: object, *, since: float, now: float
) -> dict[str, str]:
    """The placeholders of a "keeps failing" mail."""
    return {
        "setting": setting_id,
        "since": datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "minutes": str(int((now - since) // 60)),
        "reason": _reason(reason, _),
    }


def _reason(reason: object, _: Gettext) -> str:
    return translate(reason, _) or "-"
