"""One TLS policy for HTTP, SMTP and POP3 alike (`adapters.tls`), against real peers: the sandbox
authorization server, the sandbox SMTP server and Dovecot (one test CA), and TLS listeners of our
own for what no real peer should do (TLS 1.1 only, a certificate for another name).

The system trust store is tried in subprocesses whose SSL_CERT_FILE / SSL_CERT_DIR (OpenSSL's
default paths) point at the test CA or at nothing: no test touches the machine's trust store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme

from dovecot_support import Dovecot
from sandbox_support import Sandbox
from smtpserver_support import SmtpSandbox
from tls_support import PROTOCOLS, reach
from tokenpost.adapters import tls
from tokenpost.errors import TlsVerifyError, TransportError, UsageError
from tokenpost.i18n import translator
from tokenpost.settings.network import HOME_CA_VARIABLE, SYSTEM_TRUST, Trust, TrustSource

TESTS = Path(__file__).resolve().parent.parent
GERMAN = translator("de").gettext


@pytest.fixture
def peers(
    sandbox: Sandbox, smtp_peer: SmtpSandbox, dovecot_peer: Dovecot
) -> dict[str, tuple[str, int]]:
    """Where each protocol's real peer listens with implicit TLS; all use the sandbox CA."""
    issuer = sandbox.issuer.removeprefix("https://")
    host, _, port = issuer.rpartition(":")
    return {
        "http": (host, int(port)),
        "smtp": (smtp_peer.host, smtp_peer.ready.tls_port),
        "pop3": (dovecot_peer.host, dovecot_peer.pop3s_port),
    }


@pytest.fixture
def other_ca(tmp_path: Path) -> str:
    path = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(autouse=True)
def _fresh_contexts() -> Iterator[None]:
    tls.forget_contexts()
    yield
    tls.forget_contexts()


# --------------------------------------------------------------------------- the peers' CA


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_peers_ca_file_verifies(
    protocol: str, peers: dict[str, tuple[str, int]], sandbox: Sandbox
) -> None:
    await reach(protocol, *peers[protocol], ca_file=str(sandbox.ca_file))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_tokenpost_ca_file_alone_verifies(
    protocol: str, peers: dict[str, tuple[str, int]], sandbox: Sandbox
) -> None:
    await reach(protocol, *peers[protocol], home_ca_file=str(sandbox.ca_file))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_settings_own_ca_file_wins_over_tokenpost_ca_file(
    protocol: str, peers: dict[str, tuple[str, int]], sandbox: Sandbox, other_ca: str
) -> None:
    await reach(protocol, *peers[protocol], ca_file=str(sandbox.ca_file), home_ca_file=other_ca)
    with pytest.raises(TlsVerifyError):
        await reach(protocol, *peers[protocol], ca_file=other_ca, home_ca_file=str(sandbox.ca_file))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_certificate_from_an_unknown_ca_fails_alike(
    protocol: str, peers: dict[str, tuple[str, int]], other_ca: str
) -> None:
    host, port = peers[protocol]
    cases = [
        ({}, "the system trust store", "der Zertifikatsspeicher des Systems"),
        (
            {"ca_file": other_ca},
            f"the CA file {other_ca} (--ca-file)",
            f"die CA-Datei {other_ca} (--ca-file)",
        ),
        (
            {"home_ca_file": other_ca},
            f"the CA file {other_ca} (TOKENPOST_CA_FILE)",
            f"die CA-Datei {other_ca} (TOKENPOST_CA_FILE)",
        ),
    ]
    for files, trusted, vertraut in cases:
        with pytest.raises(TlsVerifyError) as caught:
            await reach(protocol, host, port, **files)
        message = str(caught.value)
        assert message.startswith(f"the certificate of {host}:{port} did not verify: ")
        assert f" (trusted: {trusted}); " in message  # after OpenSSL's reason
        assert f"(Vertrauensbasis: {vertraut}); " in caught.value.translate(GERMAN)


# --------------------------------------------------------------------------- listeners of our own


@contextlib.asynccontextmanager
async def tls_listener(context: ssl.SSLContext) -> AsyncIterator[int]:
    """A TLS server on 127.0.0.1 that says nothing; yields its port."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        await server.wait_closed()


def tls11_only(ca: trustme.CA) -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is deprecated: the point
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1_1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@contextlib.contextmanager
def blocking_tls_listener(context: ssl.SSLContext) -> Iterator[int]:
    """A TLS server on a thread of its own, with blocking sockets: unlike asyncio's, it sends its
    alert before it closes a failed handshake, as a real old server does. Yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True):
                    pass

    thread = threading.Thread(target=serve, name="tls11-listener", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(10)
        listener.close()


def handshake_with_anything_goes(port: int, ca: trustme.CA) -> str | None:
    """The TLS version a client that allows TLS 1.0 and up agrees on with the listener."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
    ca.configure_trust(context)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls_sock,
    ):
        return tls_sock.version()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_tls_1_1_is_refused(protocol: str, tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with blocking_tls_listener(tls11_only(ca)) as port:
        # The listener works: a client that allows TLS 1.1 gets it.
        assert await asyncio.to_thread(handshake_with_anything_goes, port, ca) == "TLSv1.1"
        with pytest.raises(TransportError) as caught:
            await reach(protocol, "127.0.0.1", port, ca_file=str(ca_file))
    assert not isinstance(caught.value, TlsVerifyError)
    message = str(caught.value)
    assert "(the server offers no TLS version from 1.2 on (TLSV1_ALERT_PROTOCOL_VERSION))" in (
        message
    )
    assert "der Server bietet keine TLS-Version ab 1.2 an" in caught.value.translate(GERMAN)


def test_every_context_asks_for_tls_1_2_host_names_and_verification(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    for trust in (SYSTEM_TRUST, Trust(TrustSource.CA_FILE, str(ca_file))):
        for purpose in tls.Purpose:
            context = tls.client_context(trust, purpose)
            assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
            assert context.check_hostname is True
            assert context.verify_mode is ssl.CERT_REQUIRED


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_certificate_for_another_name_fails(protocol: str, tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("mail.other.example").configure_cert(context)
    async with tls_listener(context) as port:
        with pytest.raises(TlsVerifyError) as caught:
            await reach(protocol, "127.0.0.1", port, ca_file=str(ca_file))
    assert "IP address mismatch, certificate is not valid for '127.0.0.1'" in str(caught.value)
    assert f"(trusted: the CA file {ca_file} (--ca-file)); " in str(caught.value)


# --------------------------------------------------------------------------- the system store


def reach_in_subprocess(
    peers: dict[str, tuple[str, int]], **environ: str
) -> tuple[dict[str, str], float]:
    """Each protocol's peer reached by tls_support.py in a subprocess, with nothing but the
    system store to trust; returns the outcomes and the seconds it took."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENPOST_")}
    env.update(environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    targets = [[protocol, *peers[protocol]] for protocol in PROTOCOLS]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(TESTS / "tls_support.py"), json.dumps(targets)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    outcomes: dict[str, str] = json.loads(done.stdout)
    return outcomes, time.monotonic() - started


def test_without_a_ca_file_the_system_store_is_what_is_trusted(
    peers: dict[str, tuple[str, int]], sandbox: Sandbox, tmp_path: Path
) -> None:
    empty = tmp_path / "no-certs"
    empty.mkdir()
    outcomes, _ = reach_in_subprocess(
        peers, SSL_CERT_FILE=str(sandbox.ca_file), SSL_CERT_DIR=str(empty)
    )
    assert outcomes == dict.fromkeys(PROTOCOLS, "ok")


def test_a_system_store_of_hashed_links_alone_is_trusted(
    peers: dict[str, tuple[str, int]], sandbox: Sandbox, tmp_path: Path
) -> None:
    """OpenSSL reads a certificate directory only when it verifies: a store of c_rehash links
    and no bundle file is not mistaken for an empty one."""
    certs = tmp_path / "certs"
    certs.mkdir()
    name = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(sandbox.ca_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (certs / f"{name}.0").write_bytes(sandbox.ca_file.read_bytes())
    outcomes, _ = reach_in_subprocess(
        peers, SSL_CERT_FILE=str(tmp_path / "no-bundle.pem"), SSL_CERT_DIR=str(certs)
    )
    assert outcomes == dict.fromkeys(PROTOCOLS, "ok")


def test_an_empty_system_store_is_an_error_naming_the_fix(
    peers: dict[str, tuple[str, int]], tmp_path: Path
) -> None:
    empty = tmp_path / "no-certs"
    empty.mkdir()
    missing = tmp_path / "no-bundle.pem"
    outcomes, _ = reach_in_subprocess(peers, SSL_CERT_FILE=str(missing), SSL_CERT_DIR=str(empty))
    expected = (
        f"UsageError: the system trust store holds no CA certificate (neither {missing} nor "
        f"{empty} holds one); install the ca-certificates package (Debian: apt-get install "
        "ca-certificates), or give a CA file with --ca-file or TOKENPOST_CA_FILE"
    )
    assert outcomes == dict.fromkeys(PROTOCOLS, expected)


# --------------------------------------------------------------------------- contexts


def test_contexts_are_built_once_per_purpose_and_ca_file(tmp_path: Path) -> None:
    system = tls.client_context(SYSTEM_TRUST, tls.Purpose.MAIL)
    for _ in range(100):
        assert tls.client_context(SYSTEM_TRUST, tls.Purpose.MAIL) is system
    # httpcore sets ALPN http/1.1 on its context: mail never gets that one.
    assert tls.client_context(SYSTEM_TRUST, tls.Purpose.HTTP) is not system

    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    trust = Trust(TrustSource.CA_FILE, str(ca_file))
    first = tls.client_context(trust, tls.Purpose.MAIL)
    assert tls.client_context(trust, tls.Purpose.MAIL) is first
    # A new CA in the file (rotated by the administrator) is loaded on the next connection.
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    os.utime(ca_file, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    second = tls.client_context(trust, tls.Purpose.MAIL)
    assert second is not first
    assert tls.client_context(trust, tls.Purpose.MAIL) is second


def test_sslkeylogfile_never_gets_the_session_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keylog = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(keylog))
    # What the variable does to the standard library's default context (the test can fail):
    assert ssl.create_default_context().keylog_filename == str(keylog)
    for purpose in tls.Purpose:
        assert tls.client_context(SYSTEM_TRUST, purpose).keylog_filename is None


# --------------------------------------------------------------------------- TOKENPOST_CA_FILE


def test_tokenpost_ca_file_unset_or_empty_means_none() -> None:
    assert tls.home_ca_file({}) is None
    assert tls.home_ca_file({HOME_CA_VARIABLE: ""}) is None


def test_a_good_tokenpost_ca_file_is_taken(other_ca: str) -> None:
    assert tls.home_ca_file({HOME_CA_VARIABLE: other_ca}) == other_ca


@pytest.mark.parametrize("kind", ["relative", "missing", "leaf only", "directory", "device"])
def test_a_bad_tokenpost_ca_file_is_refused_naming_the_variable(kind: str, tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = tmp_path / "leaf.pem"
    ca.issue_cert("mail.example").cert_chain_pems[0].write_to_path(str(leaf))
    path = {
        "relative": "ca.pem",
        "missing": str(tmp_path / "missing.pem"),
        "leaf only": str(leaf),
        "directory": str(tmp_path),
        "device": "/dev/zero",
    }[kind]
    with pytest.raises(UsageError) as caught:
        tls.home_ca_file({HOME_CA_VARIABLE: path})
    message = str(caught.value)
    assert message.startswith(f"cannot use the CA file {path} (TOKENPOST_CA_FILE): ")
    assert message.endswith(
        "; set TOKENPOST_CA_FILE to a PEM file of CA certificates, or unset it to use the system "
        "trust store"
    )
    assert caught.value.exit_code == 2
    german = caught.value.translate(GERMAN)
    assert german.startswith(f"die CA-Datei {path} (TOKENPOST_CA_FILE) ist nicht verwendbar: ")
    assert "{" not in german
