"""The sandbox's pages for a person: sign in with the demo account, then approve or deny.

Two pages share one form: the device flow's verification page (``/activate``, RFC 8628 §3.3)
and, when the `browser_decision` knob is ``interactive``, the browser flow's sign-in page
(``/authorize``). The demo account's user name and password are printed on the page itself: this
is a test provider, and a newcomer must be able to finish a flow without reading any file.

Plain server-rendered HTML: no JavaScript at all, every value escaped, a stylesheet from the
same origin, and headers that forbid framing, inline script and referrers.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Final

from starlette.responses import Response

STYLESHEET_PATH: Final = "/sandbox.css"
STYLESHEET: Final = """\
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d1f23; }
main { max-width: 32rem; margin: 2rem auto; padding: 1.5rem 2rem; background: #fff;
       border: 1px solid #d5d8dd; border-radius: 6px; }
h1 { font-size: 1.4rem; margin-top: 0; }
.demo { background: #eef4ff; border: 1px solid #b9cdf5; border-radius: 4px; padding: .5rem 1rem; }
.demo dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
.demo dt { font-weight: 600; }
.demo dd { margin: 0; }
.error { background: #fdecec; border: 1px solid #e3a3a3; border-radius: 4px; padding: .5rem 1rem; }
.done { font-size: 1.1rem; }
label { display: block; font-weight: 600; margin-bottom: .25rem; }
input { font-size: 1rem; padding: .4rem; width: 100%; box-sizing: border-box; }
button { font-size: 1rem; padding: .5rem 1.25rem; margin-right: .5rem; }
code { font-size: 1.05rem; }
"""
_BASE_CSP: Final = "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'"
_USER_CODE_LETTERS: Final = re.compile(r"^[A-Z]{8}$")


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """Who may sign in on the pages; both values are shown on them."""

    user: str
    password: str


def normalize_user_code(raw: str) -> str:
    """A user code as a person may type it (lower case, spaces, no dash) in the form issued."""
    compact = re.sub(r"[\s-]", "", raw).upper()
    if _USER_CODE_LETTERS.fullmatch(compact):
        return f"{compact[:4]}-{compact[4:]}"
    return raw.strip().upper()


def page_response(
    title: str, body: str, *, status: int = 200, form_action_self: bool = True
) -> Response:
    """A whole page around `body` (already escaped HTML) with the security headers.

    `form_action_self` False leaves out CSP form-action: a browser applies it to the redirects
    that follow a form, and the browser flow's form ends in a redirect to the client.
    """
    csp = _BASE_CSP + ("; form-action 'self'" if form_action_self else "")
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} · tokenpost sandbox</title>"
        f'<link rel="stylesheet" href="{STYLESHEET_PATH}"></head>'
        f"<body><main><h1>{html.escape(title)}</h1>\n{body}\n</main></body></html>\n"
    )
    headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }
    return Response(page, status, headers, media_type="text/html")


def stylesheet_response() -> Response:
    return Response(STYLESHEET, 200, {"X-Content-Type-Options": "nosniff"}, media_type="text/css")


def demo_account_box(account: DemoAccount) -> str:
    return (
        '<section class="demo" aria-labelledby="demo-title">'
        '<h2 id="demo-title">Demo account</h2><dl>'
        f"<dt>User name</dt><dd><code>{html.escape(account.user)}</code></dd>"
        f"<dt>Password</dt><dd><code>{html.escape(account.password)}</code></dd></dl>"
        "<p>This is tokenpost's test provider: its one account and password are shown here on "
        "purpose. Nothing you enter leaves this computer.</p></section>"
    )


def error_box(message: str | None) -> str:
    if message is None:
        return ""
    return f'<p class="error" role="alert">{html.escape(message)}</p>'


def activate_page(
    account: DemoAccount,
    *,
    user_code: str = "",
    user: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    """RFC 8628 §3.3: the page where the user enters the code the device shows."""
    focus = "user_code" if not user_code else "username" if not user else "password"
    body = (
        "<p>Your device shows a code. Enter it here, sign in with the demo account and approve: "
        "the device then receives its token by itself.</p>"
        f"{demo_account_box(account)}{error_box(error)}"
        '<form method="post" action="/activate">'
        '<p><label for="user_code">Code shown on the device</label>'
        f'<input id="user_code" name="user_code" value="{html.escape(user_code)}" required '
        'autocomplete="off" autocapitalize="characters" spellcheck="false" '
        f'placeholder="ABCD-EFGH"{_autofocus(focus == "user_code")}></p>'
        f"{_credential_fields(user, focus)}"
        f"{_decision_buttons()}</form>"
    )
    return page_response("Connect a device", body, status=status)


def sign_in_page(
    account: DemoAccount,
    *,
    action: str,
    client_id: str,
    scope: str,
    user: str = "",
    error: str | None = None,
    status: int = 200,
) -> Response:
    """The browser flow's sign-in and consent page; the form posts to `action` (a path with the
    authorization request's query string)."""
    scopes = html.escape(scope) if scope else "(none named)"
    body = (
        f"<p>The application <code>{html.escape(client_id)}</code> asks for access to the "
        f"account, with the scopes <code>{scopes}</code>. Sign in with the demo account and "
        "approve or deny.</p>"
        f"{demo_account_box(account)}{error_box(error)}"
        f'<form method="post" action="{html.escape(action)}">'
        f"{_credential_fields(user, 'username' if not user else 'password')}"
        f"{_decision_buttons()}</form>"
    )
    return page_response("Sign in", body, status=status, form_action_self=False)


def done_page(title: str, message: str) -> Response:
    return page_response(title, f'<p class="done" role="status">{html.escape(message)}</p>')


def _credential_fields(user: str, focus: str) -> str:
    return (
        '<p><label for="username">User name</label>'
        f'<input id="username" name="username" value="{html.escape(user)}" required '
        f'autocomplete="username" spellcheck="false"{_autofocus(focus == "username")}></p>'
        '<p><label for="password">Password</label>'
        '<input id="password" name="password" type="password" required '
        f'autocomplete="current-password"{_autofocus(focus == "password")}></p>'
    )


def _autofocus(on: bool) -> str:
    return " autofocus" if on else ""


def _decision_buttons() -> str:
    # The first button is the one Enter presses.
    return (
        '<p><button type="submit" name="decision" value="approve">Approve</button>'
        '<button type="submit" name="decision" value="deny">Deny</button></p>'
    )
