"""`tokenpost setup`: the device's quick settings — provider, SMTP server, account, then Get Token.

A dialogue on the terminal, in the process's language. Defaults come from the provider's preset:
Microsoft 365 and Gmail have a known submission server (protocols.md §1 item 8, §2.6), a generic
provider has none, so its server is asked without a default. The mail server's CA file is
optional (empty: the system trust store).

Answers are checked by the rules `provider add` and `smtp set` apply: the settings service
validates what is saved. An answer a rule refuses is shown with the rule and asked again, so no
other answer is lost; a problem no question can fix ends the dialogue as `smtp set` would (exit 2).
The provider is saved before the SMTP setting, which must name an existing provider.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

from tokenpost.cli.context import CliContext, pass_cli
from tokenpost.cli.prompts import confirm
from tokenpost.cli.translated import command
from tokenpost.errors import ValidationError
from tokenpost.secret import Secret
from tokenpost.settings.model import AuthMethod, Preset, Provider, Security, SmtpSetting
from tokenpost.text import Gettext, translate

if TYPE_CHECKING:
    from tokenpost.wiring import App

# The submission server of a preset's mail service (STARTTLS on 587 for both).
_SERVERS: Final[Mapping[Preset, str]] = {
    Preset.MICROSOFT: "smtp.office365.com",
    Preset.GOOGLE: "smtp.gmail.com",
}
_PORTS: Final[Mapping[Security, int]] = {Security.STARTTLS: 587, Security.TLS: 465}

Answers = dict[str, Any]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Question:
    """Asks for one field of a setting, given the answers so far (for defaults)."""

    field: str
    ask: Callable[[Gettext, Answers], Any]
    applies: Callable[[Answers], bool] = lambda answers: True


@command()
@pass_cli
def setup(ctx: CliContext) -> None:
    """Guided set-up of the SMTP setting with OAuth 2.0, then obtain its token."""
    from tokenpost.cli.token_cmds import token_get

    _ = ctx.gettext
    providers, current = ctx.run(_current_settings)
    if current is not None:
        question = _(
            "An SMTP setting exists ({server}, account {account}); replacing it may discard its "
            "token. Replace it?"
        ).format(server=current.server, account=current.account or "-")
        confirm(question, abort=True)
    provider = _provider(ctx, providers)
    answers: Answers = {"provider": provider}
    _save(ctx, _SMTP_QUESTIONS, answers, _smtp_of, lambda app, s: app.settings.put_smtp(s))
    click.echo(_("SMTP setting saved. Obtaining its token (Get Token)…"))
    click.get_current_context().invoke(token_get, setting="smtp", as_json=False)


async def _current_settings(app: App) -> tuple[list[Provider], SmtpSetting | None]:
    return await app.store.list_providers(), await app.store.get_smtp()


# -- the provider ------------------------------------------------------------------------------


def _provider(ctx: CliContext, existing: list[Provider]) -> Provider:
    """A provider the user picks from `existing`, or a new one, saved."""
    _ = ctx.gettext
    names = [p.name for p in existing]
    if names:
        new = _("new")
        choice = click.prompt(
            _("Provider"), type=click.Choice([*names, new]), default=names[0], show_choices=True
        )
        if choice != new:
            return next(p for p in existing if p.name == choice)
    answers: Answers = {"taken": frozenset(names)}
    return _save(
        ctx, _PROVIDER_QUESTIONS, answers, _provider_of, lambda app, p: app.settings.put_provider(p)
    )


def _ask_preset(_: Gettext, answers: Answers) -> Preset:
    choices = click.Choice([p.value for p in Preset])
    return Preset(click.prompt(_("Provider type"), type=choices, default=Preset.MICROSOFT.value))


def _ask_name(_: Gettext, answers: Answers) -> str:
    while True:
        name = str(click.prompt(_("Name for this provider"), default=answers["preset"].value))
        if name not in answers["taken"]:
            return name
        click.echo(
            _("A provider named {name} exists already: choose another name.").format(name=name)
        )


def _ask_client_id(_: Gettext, answers: Answers) -> str:
    return str(click.prompt(_("Client ID of your app registration")))


def _ask_client_secret(_: Gettext, answers: Answers) -> Secret:
    return Secret(click.prompt(_("Client secret of your app registration"), hide_input=True))


def _ask_tenant(_: Gettext, answers: Answers) -> str:
    prompt = _("Tenant (ID, domain, organizations, common)")
    return str(click.prompt(prompt, default="organizations"))


def _ask_issuer(_: Gettext, answers: Answers) -> str:
    return str(click.prompt(_("Issuer URL (https://…)")))


def _ask_scope(_: Gettext, answers: Answers) -> tuple[str, ...]:
    return tuple(click.prompt(_("Scopes (space-separated)")).split())


def _ask_provider_ca(_: Gettext, answers: Answers) -> str | None:
    prompt = _("CA file for the provider's TLS (empty: the system's trust store)")
    return _path(click.prompt(prompt, default="", show_default=False))


def _preset_is(*presets: Preset) -> Callable[[Answers], bool]:
    return lambda answers: answers["preset"] in presets


_PROVIDER_QUESTIONS: Final = (
    _Question("preset", _ask_preset),
    _Question("name", _ask_name),
    _Question("client_id", _ask_client_id),
    _Question("client_secret", _ask_client_secret, _preset_is(Preset.GOOGLE)),
    _Question("tenant", _ask_tenant, _preset_is(Preset.MICROSOFT)),
    _Question("issuer", _ask_issuer, _preset_is(Preset.GENERIC)),
    _Question("scope", _ask_scope, _preset_is(Preset.GENERIC)),
    _Question("ca_file", _ask_provider_ca, _preset_is(Preset.GENERIC)),
)


def _provider_of(answers: Answers) -> Provider:
    return Provider(
        answers["name"],
        answers["preset"],
        answers["client_id"],
        client_secret=answers.get("client_secret"),
        tenant=answers.get("tenant"),
        issuer=answers.get("issuer"),
        scope=answers.get("scope"),
        ca_file=answers.get("ca_file"),
    )


# -- the SMTP setting --------------------------------------------------------------------------


def _ask_server(_: Gettext, answers: Answers) -> str:
    default = _SERVERS.get(answers["provider"].preset)  # None: no default, an answer is needed
    return str(click.prompt(_("Primary server"), default=default))


def _ask_security(_: Gettext, answers: Answers) -> Security:
    choices = click.Choice([s.value for s in _PORTS])  # a bearer token never travels unencrypted
    return Security(click.prompt(_("Enable SSL/TLS"), type=choices, default="starttls"))


def _ask_port(_: Gettext, answers: Answers) -> int:
    return int(click.prompt(_("Port number"), type=int, default=_PORTS[answers["security"]]))


def _ask_smtp_ca(_: Gettext, answers: Answers) -> str | None:
    prompt = _("CA file for the mail server's TLS (empty: the system's trust store)")
    return _path(click.prompt(prompt, default="", show_default=False))


def _ask_timeout(_: Gettext, answers: Answers) -> int:
    return int(click.prompt(_("Timeout (seconds)"), type=int, default=30))


def _ask_account(_: Gettext, answers: Answers) -> str:
    return str(click.prompt(_("Account name (the mailbox the token is for)")))


def _ask_sender_address(_: Gettext, answers: Answers) -> str:
    return str(click.prompt(_("Sender address"), default=answers["account"]))


def _ask_sender_name(_: Gettext, answers: Answers) -> str:
    return str(click.prompt(_("Sender name"), default="tokenpost"))


_SMTP_QUESTIONS: Final = (
    _Question("server", _ask_server),
    _Question("security", _ask_security),
    _Question("port", _ask_port),
    _Question("ca_file", _ask_smtp_ca),
    _Question("timeout", _ask_timeout),
    _Question("account", _ask_account),
    _Question("sender_address", _ask_sender_address),
    _Question("sender_name", _ask_sender_name),
)


def _smtp_of(answers: Answers) -> SmtpSetting:
    return SmtpSetting(
        server=answers["server"],
        port=answers["port"],
        security=answers["security"],
        timeout=answers["timeout"],
        sender_name=answers["sender_name"],
        sender_address=answers["sender_address"],
        auth=AuthMethod.OAUTH2,
        provider=answers["provider"].name,
        account=answers["account"],
        ca_file=answers["ca_file"],
    )


# -- asking, saving, asking again --------------------------------------------------------------


def _save(
    ctx: CliContext,
    questions: Sequence[_Question],
    answers: Answers,
    build: Callable[[Answers], _T],
    save: Callable[[App, _T], Awaitable[object]],
) -> _T:
    """Ask `questions`, build the value and save it; ask again what the rules refuse."""
    _ = ctx.gettext
    asked = [q for q in questions if _ask(q, _, answers)]
    while True:
        value = build(answers)
        try:
            _store(ctx, save, value)
        except ValidationError as error:
            refused = {p.field for p in error.problems}
            again = [q for q in asked if q.field in refused]
            if refused - {q.field for q in again}:
                raise  # a problem no answer here can fix: shown as `smtp set` shows it
            _show(error, _)
            for question in again:
                _ask(question, _, answers)
            continue
        return value


def _store(ctx: CliContext, save: Callable[[App, _T], Awaitable[object]], value: _T) -> None:
    ctx.run(lambda app: save(app, value))


def _ask(question: _Question, _: Gettext, answers: Answers) -> bool:
    """Ask `question` if it applies; True when it was asked."""
    if not question.applies(answers):
        return False
    answers[question.field] = question.ask(_, answers)
    return True


def _show(error: ValidationError, _: Gettext) -> None:
    """The refusal as `smtp set` shows it; the refused questions follow."""
    if error.subject:
        subject = translate(error.subject, _)
        click.echo(
            _("tokenpost: invalid settings for {subject}:").format(subject=subject), err=True
        )
    else:
        click.echo(_("tokenpost: invalid settings:"), err=True)
    for problem in error.problems:
        click.echo(f"  {problem.translate(_)}", err=True)


def _path(answer: str) -> str | None:
    """An absolute path as `smtp set --ca-file` stores it; empty means none."""
    return str(Path(answer).expanduser().resolve()) if answer.strip() else None
