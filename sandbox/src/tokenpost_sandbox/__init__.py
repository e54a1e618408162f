"""tokenpost's sandbox: a real OAuth 2.0 authorization server on loopback, for tests and demos.

Built on authlib's server grants (the `sandbox` extra: authlib, flask, werkzeug) and served over
HTTPS with a generated CA, so tokenpost meets it exactly as it meets a real provider. Start it with
``python -m tokenpost_sandbox authserver --dir DIR``; it writes ``DIR/ready.json`` (issuer, CA file,
client credentials, pid) once it is listening. Tests drive it through its control API
(`tokenpost_sandbox.control`).

Product code never imports this package (an import-linter contract forbids it), and importing the
package itself loads nothing: the submodules pull in Flask and authlib.
"""
