"""Authorization code + PKCE on a loopback redirect: URL, redirect checks in order, exchange."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.errors import AuthorizationEndedError, RemoteProtocolError, UsageError
from tokenpost.i18n import translator
from tokenpost.oauth.authcode import (
    BROWSER_FLOW_LIFETIME,
    BrowserPending,
    code_exchange_request,
    parse_pasted_redirect,
    parse_redirect,
    start_browser_flow,
)
from tokenpost.oauth.rfc6749 import ClientAuth
from tokenpost.oauth.rfc7636 import s256_challenge
from tokenpost.secret import Secret

NOW = 1_700_000_000.0
AUTHORIZE = "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize"
REDIRECT = "http://127.0.0.1:49152/tokenpost/m365"
ISSUER = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
CODE = "M.C105_SN1.2.U.auth-code-value"
STATE_BYTES = bytes(range(100, 116))
VERIFIER_BYTES = bytes(range(32))
STATE = base64.urlsafe_b64encode(STATE_BYTES).decode().rstrip("=")
VERIFIER = base64.urlsafe_b64encode(VERIFIER_BYTES).decode().rstrip("=")


def scripted() -> Callable[[int], bytes]:
    """State first (16 bytes), then the verifier (32 bytes), as start_browser_flow asks."""
    queue = [STATE_BYTES, VERIFIER_BYTES]

    def token_bytes(size: int) -> bytes:
        data = queue.pop(0)
        assert len(data) == size
        return data

    return token_bytes


def start(**overrides: object) -> BrowserPending:
    kwargs: dict[str, object] = {
        "authorization_endpoint": AUTHORIZE,
        "client_id": "00001111-aaaa-2222-bbbb-3333cccc4444",
        "redirect_uri": REDIRECT,
        "scope": ("https://outlook.office.com/SMTP.Send", "offline_access"),
        "now": NOW,
        "issuer": ISSUER,
        "token_bytes": scripted(),
    }
    kwargs.update(overrides)
    return start_browser_flow(**kwargs)  # type: ignore[arg-type]


def query(*pairs: tuple[str, str]) -> str:
    return urlencode(pairs)


# -- the authorization URL ---------------------------------------------------------------------


def test_authorization_url_golden() -> None:
    pending = start()
    parts = urlsplit(pending.authorization_url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == AUTHORIZE
    assert parse_qsl(parts.query) == [
        ("response_type", "code"),
        ("client_id", "00001111-aaaa-2222-bbbb-3333cccc4444"),
        ("redirect_uri", REDIRECT),
        ("scope", "https://outlook.office.com/SMTP.Send offline_access"),
        ("state", STATE),
        ("code_challenge", s256_challenge(Secret(VERIFIER))),
        ("code_challenge_method", "S256"),
    ]
    assert "scope=https%3A%2F%2Foutlook.office.com%2FSMTP.Send%20offline_access" in parts.query
    assert pending.state == Secret(STATE)
    assert pending.verifier == Secret(VERIFIER)
    assert pending.redirect_uri == REDIRECT
    assert pending.issuer == ISSUER
    assert pending.expires_at == NOW + BROWSER_FLOW_LIFETIME
    assert VERIFIER not in pending.authorization_url  # only its challenge travels


def test_existing_query_and_extra_params_are_kept_in_order() -> None:
    pending = start(
        authorization_endpoint="https://accounts.example/auth?hd=example.com",
        extra_params=(("access_type", "offline"), ("prompt", "consent")),
        issuer=None,
    )
    names = [k for k, _ in parse_qsl(urlsplit(pending.authorization_url).query)]
    assert names == [
        "hd",
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "access_type",
        "prompt",
    ]
    assert pending.issuer is None


@pytest.mark.parametrize("endpoint", ["https://a.example/auth#frag", "/relative", "a.example"])
def test_bad_authorization_endpoint(endpoint: str) -> None:
    with pytest.raises(UsageError, match="authorization endpoint"):
        start(authorization_endpoint=endpoint)


def test_default_randomness_gives_fresh_state_and_verifier() -> None:
    a = start(token_bytes=secrets.token_bytes)
    b = start(token_bytes=secrets.token_bytes)
    assert a.state != b.state
    assert a.verifier != b.verifier


# -- the redirect ------------------------------------------------------------------------------


def test_code_is_returned() -> None:
    assert parse_redirect(start(), query(("code", CODE), ("state", STATE))) == Secret(CODE)


def test_leading_question_mark_and_matching_iss_are_fine() -> None:
    text = "?" + query(("code", CODE), ("state", STATE), ("iss", ISSUER))
    assert parse_redirect(start(), text) == Secret(CODE)


def test_iss_is_ignored_when_the_issuer_is_unknown() -> None:
    text = query(("code", CODE), ("state", STATE), ("iss", "https://other.example"))
    assert parse_redirect(start(issuer=None), text) == Secret(CODE)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a=" + "x" * 8200, "longer than"),
        (query(("code", CODE)), "state mismatch"),
        (query(("code", CODE), ("state", STATE + "x")), "state mismatch"),
        (query(("code", CODE), ("state", "")), "state mismatch"),
        (query(("code", CODE), ("state", STATE), ("state", STATE)), "repeated"),
        (query(("code", CODE), ("code", "other"), ("state", STATE)), "repeated"),
        (query(("code", CODE), ("state", STATE), ("iss", "https://evil.example")), "RFC 9207"),
        (query(("state", STATE)), "no code"),
        (query(("code", ""), ("state", STATE)), "no code"),
        ("code=%ff%fe&state=" + STATE, "malformed"),
        ("&".join(f"p{i}=1" for i in range(40)), "malformed"),
    ],
)
def test_redirect_protocol_errors(text: str, words: str) -> None:
    with pytest.raises(RemoteProtocolError, match=words) as caught:
        parse_redirect(start(), text)
    german = caught.value.translate(translator("de").gettext)
    assert str(caught.value).endswith("start again with tokenpost token get")
    assert german.endswith("erneut mit tokenpost token get")
    for shown in (str(caught.value), repr(caught.value), german):
        assert STATE not in shown
        assert CODE not in shown
        assert VERIFIER not in shown


def test_state_mismatch_in_german() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_redirect(start(), query(("code", CODE), ("state", "forged")))
    assert caught.value.translate(translator("de").gettext) == (
        "Weiterleitung der Autorisierung: state passt nicht (die Weiterleitung gehört nicht zu "
        "dieser Autorisierung); beginnen Sie erneut mit tokenpost token get"
    )


def test_state_is_checked_before_error() -> None:
    # A forged redirect cannot end the authorization by claiming an error.
    text = query(("error", "access_denied"), ("state", "forged"))
    with pytest.raises(RemoteProtocolError, match="state mismatch"):
        parse_redirect(start(), text)


def test_iss_is_checked_before_error() -> None:
    text = query(("error", "access_denied"), ("state", STATE), ("iss", "https://evil.example"))
    with pytest.raises(RemoteProtocolError, match="RFC 9207"):
        parse_redirect(start(), text)


def test_access_denied() -> None:
    text = query(
        ("error", "access_denied"),
        ("error_description", "AADSTS65004: User declined to consent.\r\nTrace ID: x"),
        ("state", STATE),
    )
    with pytest.raises(AuthorizationEndedError, match="denied") as caught:
        parse_redirect(start(), text)
    assert caught.value.error == "access_denied"
    assert caught.value.description == "AADSTS65004: User declined to consent."
    assert str(caught.value) == (
        "authorization redirect: access_denied: AADSTS65004: User declined to consent.; "
        "the authorization was denied; to try again, run tokenpost token get and approve the "
        "access"
    )


def test_other_redirect_errors_end_with_advice() -> None:
    text = query(("error", "invalid_scope"), ("state", STATE), ("error_description", "\x1bbad"))
    with pytest.raises(AuthorizationEndedError, match="check the provider's scopes") as caught:
        parse_redirect(start(), text)
    assert caught.value.description == "bad"


def test_unknown_redirect_error() -> None:
    text = query(("error", "weird\nthing"), ("state", STATE))
    with pytest.raises(AuthorizationEndedError, match="ended without a code") as caught:
        parse_redirect(start(), text)
    assert "\n" not in str(caught.value)


def outcome(text: str) -> Secret | Exception:
    try:
        return parse_redirect(start(), text)
    except (RemoteProtocolError, AuthorizationEndedError) as error:
        return error


@given(st.text(max_size=300))
def test_any_query_gives_a_code_or_a_known_error(text: str) -> None:
    result = outcome(text)
    assert isinstance(result, Secret | RemoteProtocolError | AuthorizationEndedError)
    if isinstance(result, Exception):
        assert STATE not in str(result)


@given(st.text(min_size=1, max_size=200))
def test_any_code_with_the_right_state_is_returned(code: str) -> None:
    assert parse_redirect(start(), query(("state", STATE), ("code", code))) == Secret(code)


# -- an address pasted on the terminal ---------------------------------------------------------


def pasted(*pairs: tuple[str, str], base: str = REDIRECT) -> str:
    return f"{base}?{query(*pairs)}"


@pytest.mark.parametrize(
    "address",
    [
        pasted(("code", CODE), ("state", STATE), ("iss", ISSUER)),
        "  " + pasted(("state", STATE), ("code", CODE)) + "\t",
        pasted(("code", CODE), ("state", STATE)) + "#_=_",
        pasted(("code", CODE), ("state", STATE), base="HTTP://127.0.0.1:49152/tokenpost/m365"),
    ],
)
def test_a_pasted_redirect_address_gives_the_code(address: str) -> None:
    assert parse_pasted_redirect(start(), address) == Secret(CODE)


@pytest.mark.parametrize(
    "base",
    [
        "http://127.0.0.1:49153/tokenpost/m365",  # another port
        "http://localhost:49152/tokenpost/m365",  # another host
        "http://127.0.0.1:49152/tokenpost/m365/",  # another path
        "http://127.0.0.1:49152/",
        "https://127.0.0.1:49152/tokenpost/m365",  # another scheme
        "http://user@127.0.0.1:49152/tokenpost/m365",
        "127.0.0.1:49152/tokenpost/m365",
        "http://[::1/tokenpost/m365",  # not a URL at all
        "",
    ],
)
def test_a_pasted_address_elsewhere_is_refused_without_echoing_it(base: str) -> None:
    address = f"{base}?{query(('code', CODE), ('state', STATE))}"
    with pytest.raises(UsageError, match="is not this authorization's redirect address") as caught:
        parse_pasted_redirect(start(), address)
    message = str(caught.value)
    assert REDIRECT in message
    assert "paste the whole address" in message
    assert CODE not in message
    assert STATE not in message


def test_a_pasted_address_with_a_wrong_state_is_refused_with_paste_advice() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        parse_pasted_redirect(start(), pasted(("code", CODE), ("state", "tampered")))
    assert str(caught.value) == (
        "pasted address: state mismatch (the redirect does not belong to this authorization); "
        "paste the whole address the browser shows after the sign-in, or wait for the browser"
    )
    assert caught.value.translate(translator("de").gettext) == (
        "eingefügte Adresse: state passt nicht (die Weiterleitung gehört nicht zu dieser "
        "Autorisierung); fügen Sie die ganze Adresse ein, die der Browser nach der Anmeldung "
        "zeigt, oder warten Sie auf den Browser"
    )


@pytest.mark.parametrize(
    ("pairs", "words"),
    [
        ((("code", CODE), ("state", STATE), ("iss", "https://evil.example")), "RFC 9207"),
        ((("state", STATE),), "no code"),
        ((("code", CODE), ("code", CODE), ("state", STATE)), "repeated"),
    ],
)
def test_a_pasted_address_is_checked_like_a_redirect(
    pairs: tuple[tuple[str, str], ...], words: str
) -> None:
    with pytest.raises(RemoteProtocolError, match=words) as caught:
        parse_pasted_redirect(start(), pasted(*pairs))
    assert str(caught.value).startswith("pasted address: ")


def test_a_pasted_denial_ends_the_authorization() -> None:
    with pytest.raises(AuthorizationEndedError, match="denied") as caught:
        parse_pasted_redirect(start(), pasted(("error", "access_denied"), ("state", STATE)))
    assert caught.value.error == "access_denied"


@given(st.sampled_from([REDIRECT, "http://127.0.0.1:1/", ""]), st.text(max_size=100))
def test_a_refused_paste_never_quotes_the_code_or_state(base: str, noise: str) -> None:
    address = f"{base}{noise}?code=Zq9CODEmark&state=Zq9STATEmark{noise}"
    with pytest.raises((UsageError, RemoteProtocolError)) as caught:
        parse_pasted_redirect(start(), address)
    for shown in (str(caught.value), caught.value.translate(translator("de").gettext)):
        assert "Zq9" not in shown


# -- the exchange ------------------------------------------------------------------------------


def test_code_exchange_request_golden_public_client() -> None:
    pending = start()
    request = code_exchange_request(
        "https://login.microsoftonline.com/organizations/oauth2/v2.0/token",
        ClientAuth("00001111-aaaa-2222-bbbb-3333cccc4444"),
        pending,
        Secret(CODE),
    )
    assert request.method == "POST"
    assert [(k, v.reveal() if isinstance(v, Secret) else v) for k, v in request.form] == [
        ("grant_type", "authorization_code"),
        ("code", CODE),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", "00001111-aaaa-2222-bbbb-3333cccc4444"),
    ]
    assert CODE not in repr(request)
    assert VERIFIER not in repr(request)


def test_code_exchange_request_google_sends_the_secret() -> None:
    request = code_exchange_request(
        "https://oauth2.googleapis.com/token",
        ClientAuth("x.apps.googleusercontent.com", Secret("GOCSPX-secret")),
        start(),
        Secret(CODE),
    )
    assert request.form[-1][0] == "client_secret"
    assert "GOCSPX-secret" not in repr(request)


def test_pending_repr_hides_state_and_verifier() -> None:
    pending = start()
    text = repr(pending).replace(pending.authorization_url, "")
    assert STATE not in text
    assert VERIFIER not in text
