"""Provider traffic through an HTTP proxy: the sandbox authorization server's token endpoint
reached through a CONNECT proxy of our own (tests/proxy_support.py), set per provider or in
HTTPS_PROXY; NO_PROXY and loopback go direct; a proxy's failures name it, never its password."""

from __future__ import annotations

import base64
import logging
import socket
import ssl
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import trustme

from proxy_support import ConnectProxy
from sandbox_support import Sandbox
from tokenpost.adapters.http_httpx import HttpxClient
from tokenpost.adapters.proxies import ProxyEnvironment, ProxySettingError
from tokenpost.errors import TlsVerifyError, TransportError
from tokenpost.i18n import translator
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.oauth.rfc6749 import ClientAuth, client_credentials_request
from tokenpost.secret import Secret
from tokenpost.settings.network import Network
from tokenpost_sandbox.certs import PROXIED_HOST

PASSWORD = "pr0xy-S3cret"
GERMAN = translator("de").gettext


def token_request(sandbox: Sandbox, *, host: str = "127.0.0.1") -> HttpRequest:
    """The app client's client-credentials request to the sandbox's token endpoint at `host`."""
    port = urlsplit(sandbox.issuer).port
    client = ClientAuth(sandbox.clients.app.client_id, Secret(sandbox.clients.app.secret))
    return client_credentials_request(f"https://{host}:{port}/token", client, ("mail.send",))


def sandbox_port(sandbox: Sandbox) -> int:
    port = urlsplit(sandbox.issuer).port
    assert port is not None
    return port


def granted(response: HttpResponse) -> bool:
    return response.status == 200 and b'"access_token"' in response.body


def environment(proxy_url: str, **more: str) -> ProxyEnvironment:
    return ProxyEnvironment.from_environ({"HTTPS_PROXY": proxy_url, **more})


def with_password(url: str) -> str:
    """`url` with user alice and PASSWORD, as an administrator writes it into HTTPS_PROXY."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://alice:{PASSWORD}@{rest}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def chain_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    async with ConnectProxy(hosts={PROXIED_HOST: "127.0.0.1"}) as started:
        yield started


# --------------------------------------------------------------------------- through the proxy


async def test_the_providers_proxy_carries_the_token_request(
    sandbox: Sandbox, proxy: ConnectProxy
) -> None:
    async with HttpxClient() as http:
        response = await http.send(
            token_request(sandbox), network=Network(str(sandbox.ca_file), proxy.url)
        )

    assert granted(response)
    assert proxy.tunnels == 1
    assert proxy.targets == [f"127.0.0.1:{sandbox_port(sandbox)}"]


async def test_https_proxy_of_the_environment_carries_it(
    sandbox: Sandbox, proxy: ConnectProxy
) -> None:
    # The name resolves nowhere: only the proxy, which maps it to 127.0.0.1, can reach it.
    request = token_request(sandbox, host=PROXIED_HOST)
    async with HttpxClient(proxies=environment(proxy.url)) as http:
        response = await http.send(request, network=Network(str(sandbox.ca_file)))

    assert granted(response)
    assert proxy.tunnels == 1
    assert proxy.targets == [f"{PROXIED_HOST}:{sandbox_port(sandbox)}"]


async def test_the_providers_proxy_wins_over_the_environment(
    sandbox: Sandbox, proxy: ConnectProxy
) -> None:
    async with ConnectProxy(refuse=403) as environment_proxy:
        async with HttpxClient(proxies=environment(environment_proxy.url)) as http:
            response = await http.send(
                token_request(sandbox, host=PROXIED_HOST),
                network=Network(str(sandbox.ca_file), proxy.url),
            )
        assert environment_proxy.targets == []
    assert granted(response)
    assert proxy.tunnels == 1


async def test_a_no_proxy_host_goes_direct(sandbox: Sandbox, proxy: ConnectProxy) -> None:
    proxies = environment(proxy.url, NO_PROXY="example.com, .tokenpost.test")
    async with HttpxClient(proxies=proxies) as http:
        with pytest.raises(TransportError, match="host name not resolved") as caught:
            await http.send(
                token_request(sandbox, host=PROXIED_HOST), network=Network(str(sandbox.ca_file))
            )

    assert "proxy" not in str(caught.value)  # tried directly, and the name resolves nowhere
    assert proxy.targets == []


async def test_loopback_goes_direct_whatever_the_environment_says(
    sandbox: Sandbox, proxy: ConnectProxy
) -> None:
    async with HttpxClient(proxies=environment(proxy.url)) as http:
        response = await http.send(token_request(sandbox), network=Network(str(sandbox.ca_file)))

    assert granted(response)
    assert proxy.targets == []


async def test_the_environments_credentials_authenticate_at_the_proxy(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hosts = {PROXIED_HOST: "127.0.0.1"}
    async with ConnectProxy(hosts=hosts, credentials=("alice", PASSWORD)) as proxy:
        request = token_request(sandbox, host=PROXIED_HOST)
        network = Network(str(sandbox.ca_file))
        async with HttpxClient(proxies=environment(with_password(proxy.url))) as http:
            response = await http.send(request, network=network)
        async with HttpxClient(proxies=environment(proxy.url)) as http:
            with pytest.raises(TransportError) as caught:
                await http.send(request, network=network)

    assert granted(response)
    assert proxy.tunnels == 1
    assert str(caught.value).startswith(
        f"the proxy {proxy.url} (the variable HTTPS_PROXY) asks for a user name and password "
        "(407 Proxy Authentication Required); put them into HTTPS_PROXY"
    )
    assert PASSWORD not in caplog.text
    assert base64.b64encode(f"alice:{PASSWORD}".encode()).decode() not in caplog.text


# --------------------------------------------------------------------------- failures


async def test_a_proxy_refusing_connect_is_named_without_its_password(sandbox: Sandbox) -> None:
    async with ConnectProxy(refuse=403) as proxy:
        proxies = environment(with_password(proxy.url))
        async with HttpxClient(proxies=proxies) as http:
            with pytest.raises(TransportError) as caught:
                await http.send(
                    token_request(sandbox, host=PROXIED_HOST),
                    network=Network(str(sandbox.ca_file)),
                )

    target = f"{PROXIED_HOST}:{sandbox_port(sandbox)}"
    assert str(caught.value) == (
        f"the proxy {proxy.url} (the variable HTTPS_PROXY) refused the connection to {target} "
        f"(403 Refused By Test Proxy); check that the proxy lets the device reach {target}"
    )
    assert caught.value.translate(GERMAN) == (
        f"der Proxy {proxy.url} (Variable HTTPS_PROXY) hat die Verbindung zu {target} abgelehnt "
        f"(403 Refused By Test Proxy); prüfen Sie, ob der Proxy dem Gerät den Zugang zu {target} "
        "erlaubt"
    )
    assert PASSWORD not in chain_text(caught.value)
    assert "alice" not in str(caught.value)


@pytest.mark.parametrize("source", ["environment", "provider"])
async def test_an_unreachable_proxy_is_named_without_its_password(
    sandbox: Sandbox, source: str
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    if source == "environment":
        client = HttpxClient(proxies=environment(with_password(url)))
        network, named = Network(str(sandbox.ca_file)), "the variable HTTPS_PROXY"
    else:
        client = HttpxClient()
        network, named = Network(str(sandbox.ca_file), url), "the provider's --proxy"
    async with client:
        with pytest.raises(TransportError) as caught:
            await client.send(token_request(sandbox, host=PROXIED_HOST), network=network)

    assert str(caught.value) == (
        f"cannot connect to the proxy {url} ({named}) to reach "
        f"{PROXIED_HOST}:{sandbox_port(sandbox)}: connection refused; check the proxy's address "
        "and port and that it is running"
    )
    assert caught.value.translate(GERMAN).startswith(f"keine Verbindung zum Proxy {url} (")
    assert PASSWORD not in chain_text(caught.value)


async def test_an_unusable_proxy_variable_is_named_not_shown(sandbox: Sandbox) -> None:
    proxies = ProxyEnvironment.from_environ(
        {"https_proxy": f"socks5://alice:{PASSWORD}@127.0.0.1:1080", "HTTPS_PROXY": "unused"}
    )
    async with HttpxClient(proxies=proxies) as http:
        with pytest.raises(ProxySettingError) as caught:
            await http.send(
                token_request(sandbox, host=PROXIED_HOST), network=Network(str(sandbox.ca_file))
            )

    assert str(caught.value).startswith(
        "the variable https_proxy is not a usable proxy URL; set it to http://HOST:PORT"
    )
    assert caught.value.exit_code == 2
    assert PASSWORD not in chain_text(caught.value)


# --------------------------------------------------------------------------- an https:// proxy


@pytest.fixture(scope="module")
def proxy_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_proxy(proxy_ca: trustme.CA) -> AsyncIterator[ConnectProxy]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    proxy_ca.issue_cert("127.0.0.1").configure_cert(context)
    async with ConnectProxy(hosts={PROXIED_HOST: "127.0.0.1"}, tls=context) as started:
        yield started


async def test_an_https_proxy_is_verified_with_the_homes_trust(
    sandbox: Sandbox, tls_proxy: ConnectProxy, proxy_ca: trustme.CA, tmp_path: Path
) -> None:
    """TLS to the proxy (the site's) is checked against TOKENPOST_CA_FILE or the system store,
    TLS to the provider through it against the provider's --ca-file."""
    home_ca = tmp_path / "site-ca.pem"
    proxy_ca.cert_pem.write_to_path(str(home_ca))
    network = Network(str(sandbox.ca_file), tls_proxy.url)
    assert tls_proxy.url.startswith("https://")

    async with HttpxClient(home_ca_file=str(home_ca)) as http:
        response = await http.send(token_request(sandbox, host=PROXIED_HOST), network=network)
    async with HttpxClient() as http:  # the system store does not know the test CA
        with pytest.raises(TlsVerifyError) as caught:
            await http.send(token_request(sandbox, host=PROXIED_HOST), network=network)

    assert granted(response)
    assert tls_proxy.tunnels == 1
    message = str(caught.value)
    assert f"or of the proxy {tls_proxy.url} did not verify" in message
    assert (
        f"(trusted: the CA file {sandbox.ca_file} (--ca-file) for {PROXIED_HOST}:"
        f"{sandbox_port(sandbox)}, the system trust store for the proxy); "
    ) in message


def test_failures_never_hold_the_password_even_in_repr() -> None:
    proxies = environment(f"http://alice:{PASSWORD}@proxy.example:3128")
    chosen = proxies.proxy_for("login.example", 443)
    assert chosen is not None
    for shown in (repr(chosen), str(chosen), chosen.shown, repr(proxies)):
        assert PASSWORD not in shown, shown
    assert chosen.shown == "http://proxy.example:3128"
    assert isinstance(chosen.password, Secret)
