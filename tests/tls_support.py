"""Reaching a TLS peer with each of tokenpost's three clients (HTTP, SMTP, POP3), the way the
product does: the adapters as wiring builds them, implicit TLS, nothing else.

Also runnable as a script, so a test can try them in a subprocess whose environment points
OpenSSL's default paths (SSL_CERT_FILE, SSL_CERT_DIR) at a test CA, without touching the
machine's trust store:

    python tests/tls_support.py '[["http", "127.0.0.1", 8443], ["smtp", "127.0.0.1", 8465]]'

prints {"http": "ok", "smtp": "TlsVerifyError: the certificate of ..."}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Final

from tokenpost.adapters.http_httpx import HttpxClient
from tokenpost.adapters.pop3_client import Pop3ClientConnector
from tokenpost.adapters.smtp_client import AioSmtpConnector
from tokenpost.errors import RemoteProtocolError
from tokenpost.oauth.http import HttpRequest
from tokenpost.settings.model import AuthMethod, PopSetting, Security, SmtpSetting
from tokenpost.settings.network import Network

PROTOCOLS: Final = ("http", "smtp", "pop3")
TIMEOUT: Final = 15


async def reach(
    protocol: str,
    host: str,
    port: int,
    *,
    ca_file: str | None = None,
    home_ca_file: str | None = None,
) -> None:
    """Connect with TLS and close; raises what the adapter raises."""
    if protocol == "http":
        async with HttpxClient(home_ca_file=home_ca_file) as http:
            url = f"https://{host}:{port}/.well-known/oauth-authorization-server"
            response = await http.send(
                HttpRequest("GET", url), network=Network(ca_file), timeout=TIMEOUT
            )
        if response.status != 200:
            raise RemoteProtocolError("HTTP {status}", status=response.status)
    elif protocol == "smtp":
        smtp = SmtpSetting(
            host, port, Security.TLS, TIMEOUT, "T", "t@example.test", AuthMethod.NONE,
            ca_file=ca_file,
        )  # fmt: skip
        session = await AioSmtpConnector(home_ca_file=home_ca_file).connect(smtp)
        await session.close()
    else:
        pop = PopSetting(
            "tls", host, port, Security.TLS, 60, AuthMethod.NONE, "/unused", ca_file=ca_file
        )
        connector = Pop3ClientConnector(home_ca_file=home_ca_file)
        pop_session = await connector.connect(pop, timeout=TIMEOUT)
        await pop_session.close()


async def _outcomes(peers: list[tuple[str, str, int]]) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    for protocol, host, port in peers:
        try:
            await reach(protocol, host, port)
        except Exception as error:  # reported to the test, which judges it
            outcomes[protocol] = f"{type(error).__name__}: {error}"
        else:
            outcomes[protocol] = "ok"
    return outcomes


def main() -> None:
    peers = [(str(p), str(h), int(n)) for p, h, n in json.loads(sys.argv[1])]
    print(json.dumps(asyncio.run(_outcomes(peers))))


if __name__ == "__main__":
    main()
