"""A provider's redirect URI (RFC 8252 §7.3) and proxy: the rules, the preset defaults, the TOML."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tokenpost.oauth.providers import default_redirect_uri, redirect_uri_for
from tokenpost.settings.model import Preset, Provider
from tokenpost.settings.provider_rules import provider_problems
from tokenpost.settings.toml_io import ConfigDocument, export_toml, parse_toml

MS = Provider("m365", Preset.MICROSOFT, "00001111-aaaa-2222-bbbb-3333cccc4444")
GENERIC = Provider(
    "idp", Preset.GENERIC, "tokenpost", issuer="https://id.example.com", scope=("mail",)
)


def fields(provider: Provider) -> dict[str, str]:
    return {p.field: str(p.rule) for p in provider_problems(provider)}


@pytest.mark.parametrize(
    "uri",
    [
        "http://localhost",
        "http://localhost/",
        "http://127.0.0.1",
        "http://127.0.0.1:8400/callback",
        "http://[::1]:53682/",
        "http://LOCALHOST/tokenpost",
    ],
)
def test_loopback_redirect_uris_are_accepted(uri: str) -> None:
    assert "redirect_uri" not in fields(replace(GENERIC, redirect_uri=uri))


@pytest.mark.parametrize(
    "uri",
    [
        "https://localhost",  # RFC 8252 §7.3: loopback redirects are http
        "http://example.com/cb",  # not loopback
        "http://127.0.0.2",
        "http://localhost/cb?x=1",
        "http://localhost/#frag",
        "http://user:pw@localhost/",
        "http://localhost:0/",
        "http://localhost:70000/",
        "http://local host/",
        "localhost",
        "",
    ],
)
def test_other_redirect_uris_are_refused(uri: str) -> None:
    assert "redirect_uri" in fields(replace(GENERIC, redirect_uri=uri))


def test_microsoft_refuses_the_ipv6_loopback() -> None:
    # protocols.md §1.7: Entra does not support [::1] redirect URIs.
    assert "[::1]" in fields(replace(MS, redirect_uri="http://[::1]"))["redirect_uri"]
    assert "redirect_uri" not in fields(replace(GENERIC, redirect_uri="http://[::1]"))


@pytest.mark.parametrize(
    ("proxy", "ok"),
    [
        ("http://proxy.example.com:3128", True),
        ("https://10.0.0.1:8443/", True),
        ("http://[fd00::1]:3128", True),
        ("socks5://proxy:1080", False),
        ("http://user:secret@proxy:3128", False),
        ("http://proxy:3128/path", False),
        ("http://proxy:3128?x", False),
        ("proxy:3128", False),
        ("http://", False),
    ],
)
def test_proxy_rule(proxy: str, ok: bool) -> None:
    assert ("proxy" not in fields(replace(GENERIC, proxy=proxy))) is ok


def test_a_proxy_password_is_never_quoted_and_points_at_the_environment() -> None:
    rule = fields(replace(GENERIC, proxy="http://user:secret@proxy:3128"))["proxy"]
    assert "secret" not in rule
    assert "HTTPS_PROXY" in rule


def test_preset_defaults_match_what_the_portals_register() -> None:
    assert default_redirect_uri(Preset.MICROSOFT) == "http://localhost"
    assert default_redirect_uri(Preset.GOOGLE) == "http://127.0.0.1"
    assert default_redirect_uri(Preset.GENERIC) == "http://127.0.0.1"
    assert redirect_uri_for(MS) == "http://localhost"
    assert redirect_uri_for(replace(MS, redirect_uri="http://localhost/tp")) == (
        "http://localhost/tp"
    )


def test_both_fields_round_trip_through_toml() -> None:
    provider = replace(GENERIC, redirect_uri="http://127.0.0.1:8400/cb", proxy="http://p:3128")
    text = export_toml(ConfigDocument((provider,), None, (), None))
    assert 'redirect_uri = "http://127.0.0.1:8400/cb"' in text
    assert parse_toml(text).providers == (provider,)
