"""Which proxy a provider request takes: the provider's --proxy, else HTTPS_PROXY unless NO_PROXY
or loopback says direct (`adapters.proxies`, no I/O)."""

from __future__ import annotations

import pytest

from tokenpost.adapters.proxies import (
    PROVIDER_SOURCE,
    Proxy,
    ProxyEnvironment,
    ProxySettingError,
    choose_proxy,
    parse_proxy,
)
from tokenpost.i18n import translator
from tokenpost.secret import Secret

PROXY = "http://proxy.example:3128"


def route(environ: dict[str, str], host: str, port: int = 443) -> str | None:
    chosen = ProxyEnvironment.from_environ(environ).proxy_for(host, port)
    return None if chosen is None else chosen.shown


def test_no_variable_means_direct() -> None:
    assert route({}, "login.example") is None
    assert route({"HTTPS_PROXY": ""}, "login.example") is None


def test_https_proxy_is_used_and_lower_case_wins() -> None:
    assert route({"HTTPS_PROXY": PROXY}, "login.example") == PROXY
    both = {"https_proxy": "http://lower.example:1", "HTTPS_PROXY": "http://upper.example:2"}
    assert route(both, "login.example") == "http://lower.example:1"
    chosen = ProxyEnvironment.from_environ(both).proxy_for("login.example", 443)
    assert chosen is not None
    assert chosen.source == "https_proxy"


def test_http_proxy_is_for_http_urls_and_not_used() -> None:
    assert route({"HTTP_PROXY": PROXY, "http_proxy": PROXY}, "login.example") is None


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "mail.localhost", "127.0.0.1", "127.8.9.10", "::1"]
)
def test_loopback_never_goes_through_the_environments_proxy(host: str) -> None:
    assert route({"HTTPS_PROXY": PROXY}, host) is None
    assert route({"HTTPS_PROXY": PROXY, "NO_PROXY": "other.example"}, host) is None


@pytest.mark.parametrize(
    ("no_proxy", "host", "port", "direct"),
    [
        ("*", "login.example", 443, True),
        ("example.com", "example.com", 443, True),
        ("example.com", "login.example.com", 443, True),
        ("example.com", "notexample.com", 443, False),
        (".example.com", "login.example.com", 443, True),
        (".example.com", "example.com", 443, True),
        ("*.example.com", "a.b.example.com", 443, True),
        (" Example.COM. , other", "login.example.com", 443, True),
        ("login.example.com:8443", "login.example.com", 8443, True),
        ("login.example.com:8443", "login.example.com", 443, False),
        ("10.0.0.0/8", "10.1.2.3", 443, True),
        ("10.0.0.0/8", "11.1.2.3", 443, False),
        ("192.0.2.7", "192.0.2.7", 443, True),
        ("2001:db8::/32", "2001:db8::1", 443, True),
        ("[2001:db8::1]:443", "2001:db8::1", 443, True),
        ("2001:db8::1", "2001:db8::2", 443, False),
        ("10.0.0.0/8", "login.example", 443, False),
        (",,", "login.example", 443, False),
    ],
)
def test_no_proxy_entries(no_proxy: str, host: str, port: int, direct: bool) -> None:
    environ = {"HTTPS_PROXY": PROXY, "no_proxy": no_proxy}
    assert (route(environ, host, port) is None) is direct


def test_the_providers_proxy_wins_even_for_no_proxy_hosts_and_loopback() -> None:
    environment = ProxyEnvironment.from_environ(
        {"HTTPS_PROXY": "http://site.example:8080", "NO_PROXY": "*"}
    )
    for host in ("login.example", "127.0.0.1"):
        chosen = choose_proxy(PROXY, environment, host, 443)
        assert chosen is not None
        assert (chosen.shown, chosen.source) == (PROXY, PROVIDER_SOURCE)
    assert choose_proxy(None, environment, "login.example", 443) is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://proxy.example:3128", "http://proxy.example:3128"),
        ("http://proxy.example:3128/", "http://proxy.example:3128"),
        ("proxy.example:3128", "http://proxy.example:3128"),
        ("http://proxy.example", "http://proxy.example:80"),
        ("https://proxy.example", "https://proxy.example:443"),
        ("http://[2001:db8::1]:3128", "http://[2001:db8::1]:3128"),
        ("  http://10.0.0.1:8080  ", "http://10.0.0.1:8080"),
    ],
)
def test_proxy_urls(url: str, shown: str) -> None:
    assert parse_proxy(url, "HTTPS_PROXY").shown == shown


def test_credentials_are_percent_decoded_and_kept_secret() -> None:
    proxy = parse_proxy("http://dom%5Calice:p%40ss%3Aword@proxy.example:3128", "HTTPS_PROXY")
    assert proxy.username == "dom\\alice"
    assert proxy.password == Secret("p@ss:word")
    for shown in (proxy.shown, repr(proxy), str(proxy)):
        assert "p@ss" not in shown
        assert "alice" not in shown
    environment = ProxyEnvironment.from_environ({"HTTPS_PROXY": "http://a:hunter2@p.example:1"})
    assert "hunter2" not in repr(environment)


@pytest.mark.parametrize(
    "url",
    [
        "socks5://alice:hunter2@proxy.example:1080",
        "ftp://proxy.example",
        "http://alice:hunter2@proxy.example:99999",
        "http://alice:hunter2@proxy.example:3128/path",
        "http://alice:hunter2@proxy.example:3128?x=1",
        "http://",
        "http://bad_host!:3128",
    ],
)
def test_an_unusable_variable_is_named_never_shown(url: str) -> None:
    environment = ProxyEnvironment.from_environ({"HTTPS_PROXY": url})
    with pytest.raises(ProxySettingError) as caught:
        environment.proxy_for("login.example", 443)
    message = str(caught.value)
    assert message.startswith("the variable HTTPS_PROXY is not a usable proxy URL; ")
    assert "hunter2" not in message
    german = caught.value.translate(translator("de").gettext)
    assert german.startswith("die Variable HTTPS_PROXY ist keine verwendbare Proxy-URL; ")


def test_an_unusable_providers_proxy_names_the_option() -> None:
    with pytest.raises(ProxySettingError, match=r"^the provider's --proxy is not a usable"):
        choose_proxy("socks5://proxy.example:1080", ProxyEnvironment(), "login.example", 443)


def test_a_proxy_is_shown_without_credentials() -> None:
    proxy = Proxy("http", "proxy.example", 3128, "HTTPS_PROXY", "alice", Secret("hunter2"))
    assert proxy.shown == "http://proxy.example:3128"
    assert "hunter2" not in repr(proxy)
