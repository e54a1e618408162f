"""The JSON API under ``/api/v1``, described by the OpenAPI document at ``/openapi.json``.

The same services as the CLI and the web page, through `wiring.App`: status, settings (read and
write), getting, polling, finishing, cancelling and deleting a token, and the connection test.

- Credentials (`credentials`): an API token (``Authorization: Bearer tpat_…``, from
  ``tokenpost admin token create``) or the web page's session cookie, which the page's guard
  (`web.security`) checks with its CSRF token on every change. A viewer reads; an administrator
  also changes.
- A setting is named as on the command line: ``smtp`` or ``pop:NAME`` (the colon may be
  percent-encoded, ``pop%3ANAME``).
- Every error is ``{"error": {"code", "message", "field", "fix", …}}``; the codes are stable
  (`codes`), the message is in the language of Accept-Language.

One module per concern: `status`, `settings`, `tokens`, `checks`; `routes` joins them (and the
OpenAPI document, `document`) into the one router `web.app` registers.
"""
