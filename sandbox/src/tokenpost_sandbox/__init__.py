"""tokenpost's sandbox: a real OAuth 2.0 authorization server on loopback, for tests and demos.

A distribution of its own (`tokenpost-sandbox`, in the repository's `sandbox/`), never part of
tokenpost's wheel. Built on authlib's server grants, served by uvicorn as a Starlette app over
HTTPS with a throw-away CA, so tokenpost meets it exactly as it meets a real provider. Start it
with ``python -m tokenpost_sandbox authserver --dir DIR``; it writes ``DIR/ready.json`` (issuer,
CA file, client credentials, pid) once it is listening. Tests drive it through its control API
(`tokenpost_sandbox.control`).

tokenpost never imports this package (an import-linter contract forbids it), and importing the
package itself loads nothing: the submodules pull in Starlette and authlib.
"""
