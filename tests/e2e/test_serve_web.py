"""`tokenpost serve` starts the web page beside the daemon: it prints the address (and, on the
first start, the administrator's password, never logged), refuses plain HTTP off loopback and a
port in use, serves HTTPS with a certificate, and runs without the page with --no-web."""

from __future__ import annotations

import re
import signal
import socket
import ssl
from pathlib import Path

import httpx
import trustme
from cli_support import Cli, Spawned

URL = re.compile(r"Web page: (https?://\S+)")
PASSWORD = re.compile(r"Web administrator: admin, password: (\S+) ")


def stop(serve: Spawned) -> tuple[int, str]:
    serve.process.send_signal(signal.SIGTERM)
    return serve.finish(timeout=60)


def test_serve_prints_the_address_and_the_first_password_once(cli: Cli) -> None:
    serve = cli.spawn("serve", "--listen", "127.0.0.1:0")
    try:
        url = URL.search(serve.wait_for_line(URL)).group(1)  # type: ignore[union-attr]
        password = PASSWORD.search(serve.wait_for_line(PASSWORD)).group(1)  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url) as http:
            login = http.get("/login")
            assert login.status_code == 200
            csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
            session = login.cookies.get("tokenpost_session") or _cookie(login)
            signed_in = http.post(
                "/login",
                data={"name": "admin", "password": password, "csrf": csrf},
                headers={"Cookie": f"tokenpost_session={session}"},
            )
            assert signed_in.status_code == 303, signed_in.text
            status = http.get("/", headers={"Cookie": f"tokenpost_session={_cookie(signed_in)}"})
            assert status.status_code == 200
            assert "admin" in status.text
    finally:
        code, err = stop(serve)
    assert code == 0, err
    assert f"web page at {url}" in err  # logged too
    assert password not in err  # the password only on standard output
    again = cli.spawn("serve", "--listen", "127.0.0.1:0")
    try:
        again.wait_for_line(URL)
    finally:
        _code, _err = stop(again)
    assert "password" not in "".join(cli.outputs[-3:])  # an account exists: nothing to show


def _cookie(response: httpx.Response) -> str:
    found = re.search(r"tokenpost_session=([^;]+)", response.headers.get("set-cookie", ""))
    assert found is not None
    return found.group(1)


def test_serve_refuses_plain_http_off_loopback(cli: Cli) -> None:
    result = cli.run("serve", "--listen", "0.0.0.0:8025")
    assert result.returncode == 2
    assert "--tls-cert and --tls-key" in result.stderr
    assert not (cli.home / "tokenpost.db").exists()  # refused before anything was opened


def test_serve_refuses_a_port_in_use(cli: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli.run("serve", "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use by another program" in result.stderr
    assert "--listen HOST:PORT" in result.stderr


def test_serve_bad_listen_address(cli: Cli) -> None:
    result = cli.run("serve", "--listen", "8025")
    assert result.returncode == 2
    assert "give HOST:PORT" in result.stderr


def test_serve_over_https(cli: Cli, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    serve = cli.spawn(
        "serve", "--listen", "127.0.0.1:0", "--tls-cert", str(cert_file), "--tls-key",
        str(key_file),
    )  # fmt: skip
    try:
        url = URL.search(serve.wait_for_line(URL)).group(1)  # type: ignore[union-attr]
        assert url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context()
        ca.configure_trust(context)
        with httpx.Client(base_url=url, verify=context) as http:
            assert http.get("/login").status_code == 200
    finally:
        code, err = stop(serve)
    assert code == 0, err


def test_serve_without_the_web_page(cli: Cli) -> None:
    serve = cli.spawn("serve", "--no-web")
    try:
        serve.wait_for_err_line(re.compile("service started"))
    finally:
        code, err = stop(serve)
    assert code == 0, err
    assert "Web page" not in "".join(cli.outputs)
    assert "web page at" not in err
