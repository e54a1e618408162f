"""A settings document: everything an administrator edits, checked and merged as one.

`toml_io` writes a document as TOML and `toml_read` reads one; the rules here are those of
`settings.validate`, with each field named by its path in the document ("smtp.port",
"providers.m365.client_id", "pop.fax.check_interval", "alerts.recipients").

Importing a document replaces the stored providers and POP settings with the document's, and the
SMTP setting and alert settings when the document has them (`removed_by` says what that removes;
the settings service applies it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Final, TypeVar

from tokenpost.errors import FieldProblem, ValidationError
from tokenpost.settings.model import (
    POP_PREFIX,
    AlertSettings,
    AuthMethod,
    PopSetting,
    Provider,
    SmtpSetting,
)
from tokenpost.settings.provider_rules import provider_problems
from tokenpost.settings.validate import alert_problems, pop_problems, smtp_problems
from tokenpost.text import N_, Text

SUBJECT: Final = Text("settings file")


@dataclass(frozen=True, slots=True)
class ConfigDocument:
    """Everything an administrator edits: providers, the SMTP setting, the POP settings, alerts.

    `smtp` and `alerts` are None when the document says nothing about them; importing such a
    document leaves the stored ones as they are.
    """

    providers: tuple[Provider, ...] = ()
    smtp: SmtpSetting | None = None
    pop: tuple[PopSetting, ...] = ()
    alerts: AlertSettings | None = None


def document_problems(
    doc: ConfigDocument,
    *,
    known_providers: Mapping[str, Provider] | None = None,
    require_secrets: bool = True,
) -> tuple[FieldProblem, ...]:
    """Every rule the document breaks, fields named by their path in the document."""
    lookup = {**(known_providers or {}), **{p.name: p for p in doc.providers}}
    return (
        *duplicate_problems(doc),
        *item_problems(doc, lookup, require_secrets=require_secrets),
    )


def validate_document(
    doc: ConfigDocument,
    *,
    known_providers: Mapping[str, Provider] | None = None,
    require_secrets: bool = True,
) -> None:
    """Raise `ValidationError` with every problem of `doc` (see `document_problems`)."""
    problems = document_problems(
        doc, known_providers=known_providers, require_secrets=require_secrets
    )
    raise_if(problems)


def merge_secrets(new: ConfigDocument, old: ConfigDocument) -> ConfigDocument:
    """`new`, with each secret it omits taken from the item of the same name in `old`.

    A secret is kept only while it would still go where it went: a client secret to the same
    client at the same provider endpoints, a password to the same server and account under a
    password method. Pointing an item elsewhere must not carry the old secret along.
    """
    old_providers = {p.name: p for p in old.providers}
    old_pops = {p.name: p for p in old.pop}
    return ConfigDocument(
        providers=tuple(_keep_client_secret(p, old_providers.get(p.name)) for p in new.providers),
        smtp=None if new.smtp is None else _keep_password(new.smtp, old.smtp),
        pop=tuple(_keep_password(p, old_pops.get(p.name)) for p in new.pop),
        alerts=new.alerts,  # alerts hold no secret
    )


def _keep_client_secret(new: Provider, old: Provider | None) -> Provider:
    if new.client_secret is not None or old is None or old.client_secret is None:
        return new
    if _secret_destination(new) != _secret_destination(old):
        return new
    return replace(new, client_secret=old.client_secret)


def _secret_destination(p: Provider) -> tuple[str | None, ...]:
    # Everything that decides which server receives the client secret (RFC 6749 §2.3.1,
    # RFC 8628 §3.1, RFC 7009 §2.1 all authenticate the client).
    return (
        p.preset,
        p.client_id,
        p.tenant,
        p.issuer,
        p.token_endpoint,
        p.device_authorization_endpoint,
        p.revocation_endpoint,
    )


_MailT = TypeVar("_MailT", SmtpSetting, PopSetting)


def _keep_password(new: _MailT, old: _MailT | None) -> _MailT:
    if new.password is not None or old is None or old.password is None:
        return new
    if new.auth not in (AuthMethod.PASSWORD, AuthMethod.APOP):
        return new
    if (new.server, new.account) != (old.server, old.account):
        return new
    return replace(new, password=old.password)


def item_problems(
    doc: ConfigDocument, lookup: Mapping[str, Provider], *, require_secrets: bool
) -> Iterator[FieldProblem]:
    """The rules each item breaks; `lookup` holds the providers settings may use."""
    for provider in doc.providers:
        found = provider_problems(provider, require_secrets=require_secrets)
        yield from _prefixed(f"providers.{provider.name}", found)
    if doc.smtp is not None:
        yield from _prefixed(
            "smtp", smtp_problems(doc.smtp, lookup, require_secrets=require_secrets)
        )
    for pop in doc.pop:
        found = pop_problems(pop, lookup, require_secrets=require_secrets)
        yield from _prefixed(f"pop.{pop.name}", found)
    if doc.alerts is not None:
        yield from _prefixed("alerts", alert_problems(doc.alerts))


def _prefixed(prefix: str, problems: Iterable[FieldProblem]) -> Iterator[FieldProblem]:
    return (FieldProblem(f"{prefix}.{p.field}", p.rule) for p in problems)


def duplicate_problems(doc: ConfigDocument) -> Iterator[FieldProblem]:
    """Two providers or two POP settings with one name: a document cannot hold both."""
    for group, names in (
        ("providers", [p.name for p in doc.providers]),
        ("pop", [p.name for p in doc.pop]),
    ):
        for name in sorted({n for n in names if names.count(n) > 1}):
            yield FieldProblem(f"{group}.{name}", N_("duplicate name"))


def raise_if(problems: Iterable[FieldProblem]) -> None:
    """Raise one `ValidationError` about the settings file when there are problems."""
    found = tuple(problems)
    if found:
        raise ValidationError(found, subject=SUBJECT)


def first_per_field(problems: Iterable[FieldProblem]) -> tuple[FieldProblem, ...]:
    """The first problem of each field, in order: one message per field even when several
    checks (rules, the host's file system, the provider's discovery) found something."""
    first: dict[str, FieldProblem] = {}
    for problem in problems:
        first.setdefault(problem.field, problem)
    return tuple(first.values())


@dataclass(frozen=True, slots=True)
class Removals:
    """What importing a document removes from the stored settings, by name."""

    providers: tuple[str, ...] = ()
    pop: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.providers or self.pop)

    def as_texts(self) -> tuple[Text, ...]:
        """One `Text` per removed item, POP settings first (they hold tokens)."""
        return (
            *(Text("POP setting {name}", name=name) for name in self.pop),
            *(Text("provider {name}", name=name) for name in self.providers),
        )

    @property
    def setting_ids(self) -> tuple[str, ...]:
        return tuple(POP_PREFIX + name for name in self.pop)


def removed_by(old: ConfigDocument, new: ConfigDocument) -> Removals:
    """What importing `new` over the stored settings `old` removes.

    The document's providers and POP settings replace the stored ones: every stored one it does
    not name goes, except the provider of the SMTP setting when the document has no [smtp] (that
    setting stays as it is, with its provider). [smtp] and [alerts] replace, never remove.
    """
    keep = {p.name for p in new.providers}
    if new.smtp is None and old.smtp is not None and old.smtp.provider:
        keep.add(old.smtp.provider)
    wanted_pop = {p.name for p in new.pop}
    return Removals(
        providers=tuple(sorted(p.name for p in old.providers if p.name not in keep)),
        pop=tuple(sorted(p.name for p in old.pop if p.name not in wanted_pop)),
    )
