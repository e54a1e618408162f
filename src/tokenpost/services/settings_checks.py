"""Everything wrong with a setting or a settings document, found at once and raised as one error.

Three sources join in one `ValidationError` (exit 2, each field with its rule): the settings rules
(`settings.validate`, no I/O), the host's file system (`ports.HostChecks`: CA files, delivery
folders), and the provider itself — a generic provider that names no scope gets the scopes its
discovery document offers (RFC 8414 §2 `scopes_supported`) added to the rule, or why they could
not be fetched. One message per field: the first source that found a problem wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tokenpost.errors import FieldProblem, TokenpostError, ValidationError
from tokenpost.ports import HostChecks
from tokenpost.services.endpoints import EndpointResolver
from tokenpost.settings.document import (
    SUBJECT,
    ConfigDocument,
    document_problems,
    first_per_field,
)
from tokenpost.settings.model import PopSetting, Provider, SmtpSetting
from tokenpost.settings.provider_rules import (
    GENERIC_SCOPE_RULE,
    provider_problems,
    provider_subject,
)
from tokenpost.settings.validate import pop_problems, smtp_problems
from tokenpost.text import Text


class NoHostChecks:
    """`HostChecks` that find nothing: for services tested without a file system."""

    def problems(self, item: Provider | SmtpSetting | PopSetting) -> tuple[FieldProblem, ...]:
        del item
        return ()


@dataclass
class SettingsChecks:
    """Checks settings before the settings service stores them."""

    host: HostChecks
    resolver: EndpointResolver | None = None  # None: no discovery (scope hints are left out)

    async def provider(self, provider: Provider) -> None:
        """Raise `ValidationError` with every problem of `provider`."""
        found = [*provider_problems(provider), *self.host.problems(provider)]
        found = [await self._with_scopes(problem, provider) for problem in found]
        _raise_if(found, subject=provider_subject(provider.name))

    async def mail(
        self,
        setting: SmtpSetting | PopSetting,
        providers: Mapping[str, Provider],
        damaged_providers: Iterable[str] = (),
    ) -> None:
        """Raise `ValidationError` with every problem of the SMTP or a POP setting.

        `providers` are the intact providers; a setting naming one of `damaged_providers` is told
        that its provider must be given again, not that it does not exist.
        """
        rules = (
            smtp_problems(setting, providers)
            if isinstance(setting, SmtpSetting)
            else pop_problems(setting, providers)
        )
        found = [*rules, *self.host.problems(setting)]
        if setting.provider in set(damaged_providers):
            found.insert(0, _damaged_provider(setting.provider))
        _raise_if(found, subject=setting.setting_id)

    async def document(self, doc: ConfigDocument, read: Sequence[FieldProblem] = ()) -> None:
        """Raise `ValidationError` with every problem of a settings document (secrets merged):
        `read`, those found reading it, first, then the rules and the host's."""
        found = [*read, *document_problems(doc)]
        for provider in doc.providers:
            found += _prefixed(f"providers.{provider.name}", self.host.problems(provider))
        if doc.smtp is not None:
            found += _prefixed("smtp", self.host.problems(doc.smtp))
        for pop in doc.pop:
            found += _prefixed(f"pop.{pop.name}", self.host.problems(pop))
        for provider in doc.providers:
            prefix = f"providers.{provider.name}"
            found = [await self._with_scopes(p, provider, prefix=prefix) for p in found]
        _raise_if(found, subject=SUBJECT)

    async def _with_scopes(
        self, problem: FieldProblem, provider: Provider, *, prefix: str = ""
    ) -> FieldProblem:
        """`problem`, with the provider's offered scopes when it is the generic-scope rule."""
        field = f"{prefix}.scope" if prefix else "scope"
        if problem.field != field or problem.rule != GENERIC_SCOPE_RULE:
            return problem
        if self.resolver is None or provider.issuer is None:
            return problem  # explicit endpoints: no discovery document to ask
        rule = Text(GENERIC_SCOPE_RULE)
        try:
            metadata = await self.resolver.metadata(provider)
        except TokenpostError as error:
            return FieldProblem(
                field,
                Text(
                    "{rule}; the scopes it offers are not known: its discovery document could "
                    "not be fetched ({reason})",
                    rule=rule,
                    reason=error,
                ),
            )
        if not metadata.scopes_supported:
            return FieldProblem(
                field, Text("{rule}; its discovery document lists no scopes", rule=rule)
            )
        offered = " ".join(metadata.scopes_supported)
        return FieldProblem(
            field, Text("{rule}; the provider offers: {scopes}", rule=rule, scopes=offered)
        )


def _damaged_provider(name: str | None) -> FieldProblem:
    return FieldProblem(
        "provider",
        Text(
            "provider {name!r} is damaged in the store: add it again with "
            "'tokenpost provider add {name}'",
            name=name,
        ),
    )


def _prefixed(prefix: str, problems: Iterable[FieldProblem]) -> list[FieldProblem]:
    return [FieldProblem(f"{prefix}.{p.field}", p.rule) for p in problems]


def _raise_if(problems: Iterable[FieldProblem], *, subject: str | Text) -> None:
    found = first_per_field(problems)
    if found:
        raise ValidationError(found, subject=subject)
