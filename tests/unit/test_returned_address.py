"""The address a browser ended on, handed in to finish a browser flow (pasted, or a web page's own
callback URL): which flow it names, what it must match, and what a refusal says (never the code,
the state or the verifier)."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.errors import AuthorizationEndedError
from tokenpost.i18n import translator
from tokenpost.oauth.authcode import (
    NotRedirectAddressError,
    RedirectRefusedError,
    address_state,
    parse_pasted_redirect,
    start_browser_flow,
)
from tokenpost.oauth.pending import BrowserPending
from tokenpost.oauth.redirect_uri import web_redirect_rule
from tokenpost.secret import Secret
from tokenpost.text import Text

NOW = 1_700_000_000.0
ISSUER = "https://as.example.test"
CALLBACK = "https://device.example.test/oauth/callback"
WHAT = Text("the address")
FIX = Text("start again")

# What an authorization server may put in a code or a state (RFC 6749 Appendix A.11: VSCHAR).
vschar = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=60)
codes = vschar.map(lambda value: "c0de-" + value)  # never a word of a message
hosts = st.sampled_from(["device.example.test", "10.0.0.7", "[2001:db8::7]", "localhost"])
paths = st.sampled_from(["", "/", "/oauth/callback", "/cb/"])
ports = st.one_of(st.none(), st.integers(1, 65535))
schemes = st.sampled_from(["http", "https"])


@st.composite
def callbacks(draw: st.DrawFn) -> str:
    port = draw(ports)
    authority = draw(hosts) + ("" if port is None else f":{port}")
    return f"{draw(schemes)}://{authority}{draw(paths)}"


def flow(redirect_uri: str = CALLBACK) -> BrowserPending:
    return start_browser_flow(
        authorization_endpoint=ISSUER + "/authorize",
        client_id="client-1",
        redirect_uri=redirect_uri,
        scope=("mail.send",),
        now=NOW,
        issuer=ISSUER,
    )


def returned(redirect_uri: str, **params: str) -> str:
    return f"{redirect_uri}?{urlencode(params, quote_via=quote)}"


def shown(error: Exception) -> list[str]:
    """Everything a person could see of an error: English, German, repr."""
    texts = [str(error), repr(error)]
    if isinstance(error, RedirectRefusedError | NotRedirectAddressError | AuthorizationEndedError):
        texts.append(error.translate(translator("de").gettext))
    return texts


@given(callbacks(), codes)
def test_the_address_the_provider_sends_back_gives_the_code(redirect_uri: str, code: str) -> None:
    assert web_redirect_rule(redirect_uri) is None
    pending = flow(redirect_uri)
    address = returned(redirect_uri, code=code, state=pending.state.reveal(), iss=ISSUER)
    assert parse_pasted_redirect(pending, address, what=WHAT, fix=FIX) == Secret(code)
    assert address_state(address) == pending.state


@given(callbacks(), codes, vschar)
def test_another_state_is_refused_without_showing_a_secret(
    redirect_uri: str, code: str, state: str
) -> None:
    pending = flow(redirect_uri)
    address = returned(redirect_uri, code=code, state=state)
    if Secret(state) == pending.state:
        return
    with pytest.raises(RedirectRefusedError) as refused:
        parse_pasted_redirect(pending, address, what=WHAT, fix=FIX)
    assert refused.value.problem == "state"
    for text in shown(refused.value):
        assert code not in text
        assert pending.state.reveal() not in text
        assert pending.verifier.reveal() not in text


HERE = "https://device.example.test/oauth/callback"
NOT_IT = "not_redirect_address"


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("http://device.example.test/oauth/callback?code=c&state={state}", NOT_IT),
        ("https://device.example.test:8443/oauth/callback?code=c&state={state}", NOT_IT),
        ("https://device.example.test/other?code=c&state={state}", NOT_IT),
        ("https://evil.example.test/oauth/callback?code=c&state={state}", NOT_IT),
        ("https://user@device.example.test/oauth/callback?code=c&state={state}", NOT_IT),
        ("not an address at all", NOT_IT),
        (HERE + "?state={state}", "no_code"),
        (HERE + "?code=c&code=d&state={state}", "repeated"),
        (HERE + "?code=c&state={state}&iss=https://x.test", "iss"),
        (HERE + "?code=c&state={state}&x=%ff", "malformed"),
        (HERE + "?code=c&state={state}&x=" + "y" * 9000, "oversized"),
    ],
)
def test_each_refusal_names_its_problem(address: str, problem: str) -> None:
    pending = flow()
    with pytest.raises((RedirectRefusedError, NotRedirectAddressError)) as refused:
        parse_pasted_redirect(
            pending, address.format(state=pending.state.reveal()), what=WHAT, fix=FIX
        )
    assert refused.value.problem == problem
    for text in shown(refused.value):
        assert pending.state.reveal() not in text


def test_the_default_port_is_the_scheme_s() -> None:
    pending = flow()
    address = returned(
        "https://device.example.test:443/oauth/callback", code="c", state=pending.state.reveal()
    )
    assert parse_pasted_redirect(pending, address, what=WHAT, fix=FIX) == Secret("c")


def test_a_provider_error_ends_the_flow_and_hides_the_state() -> None:
    pending = flow()
    address = returned(CALLBACK, error="access_denied", state=pending.state.reveal())
    with pytest.raises(AuthorizationEndedError) as ended:
        parse_pasted_redirect(pending, address, what=WHAT, fix=FIX)
    assert ended.value.error == "access_denied"
    for text in shown(ended.value):
        assert pending.state.reveal() not in text


@pytest.mark.parametrize(
    "address",
    [
        "https://device.example.test/oauth/callback?code=c",
        "https://device.example.test/oauth/callback?code=c&state=a&state=b",
        "https://device.example.test/oauth/callback?code=c&state=",
        "https://device.example.test/oauth/callback?state=%ff",
        "",
    ],
)
def test_an_address_without_one_state_names_no_flow(address: str) -> None:
    assert address_state(address) is None


@given(st.text(max_size=200))
def test_address_state_never_fails(address: str) -> None:
    found = address_state(address)
    assert found is None or isinstance(found, Secret)


@pytest.mark.parametrize(
    "uri",
    [
        "ftp://device.example.test/cb",
        "https:///cb",
        "https://device.example.test/cb?x=1",
        "https://device.example.test/cb#top",
        "https://admin:pw@device.example.test/cb",
        "https://device.example.test:0/cb",
        "https://device.example.test:99999/cb",
        "https://device example.test/cb",
        "/oauth/callback",
    ],
)
def test_a_callback_that_cannot_be_used_is_refused(uri: str) -> None:
    assert web_redirect_rule(uri) is not None


@given(callbacks())
def test_every_plain_callback_is_accepted(uri: str) -> None:
    assert web_redirect_rule(uri) is None
