"""Every client TLS context tokenpost builds: HTTP to providers, SMTP, POP3, and the CA-file check.

One policy (DESIGN invariant 3); `settings.network.trust_for` chooses what is trusted:

- the peer's certificate is always verified (CERT_REQUIRED) and its host name always checked;
- TLS 1.2 or newer;
- with a CA file (a provider's or setting's --ca-file, else TOKENPOST_CA_FILE), exactly that file's
  certificates; without one, the system trust store: OpenSSL's default paths, which honour
  SSL_CERT_FILE and SSL_CERT_DIR and are, on Debian, /etc/ssl/certs (where a site's own CAs go,
  with update-ca-certificates).

Contexts are built with ``ssl.SSLContext(PROTOCOL_TLS_CLIENT)``, not `ssl.create_default_context`,
which would also write every session key to a file named by SSLKEYLOGFILE: anyone who can set
tokenpost's environment could then read bearer tokens off the wire.

A system store without a single CA certificate (a minimal container without the ca-certificates
package) is an error that names the fix, never a silent fallback to another bundle: certifi's
bundle lacks the site's own CAs and is not updated with the system. Whoever wants it says so with
``TOKENPOST_CA_FILE=$(python3 -m certifi)``.

Cost and caching: a context that loads the system store costs about 18 ms to build (Debian's 140
CAs); contexts are kept per purpose and CA file for the life of the process, so a burst of
connections builds none. A CA file is looked at (`os.stat`) at each use and loaded again when its
size, modification time or inode changed; the system store is loaded once per process (a CA
installed in it is used from the next start, e.g. of `serve`).

HTTP and mail get contexts of their own: httpcore sets the ALPN protocol "http/1.1" on the context
it is given, which a mail server must not be offered.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import stat
import threading
from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from tokenpost.errors import TlsVerifyError, UsageError
from tokenpost.settings.network import HOME_CA_VARIABLE, Trust, TrustSource
from tokenpost.settings.rule_tools import PATH_RULE, is_absolute_path
from tokenpost.text import N_, Text

# CA bundles are well under 1 MiB (Debian's whole system bundle is about 200 KiB).
MAX_CA_FILE_BYTES: Final = 16 * 1024 * 1024
MINIMUM_VERSION: Final = ssl.TLSVersion.TLSv1_2

NO_CA_RULE: Final = N_("holds no CA certificate (a PEM file of CA certificates is needed)")
MISSING_CA_RULE: Final = N_("no such file (a PEM file of CA certificates)")
NOT_A_FILE_RULE: Final = N_("must be a regular file (a PEM file of CA certificates)")

# OpenSSL's reasons when the peer offers no TLS version tokenpost accepts (only older than 1.2).
_OLD_PROTOCOL_REASONS: Final = frozenset(
    {"TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE"}
)
# OpenSSL's names for the certificates of a hashed directory (c_rehash, update-ca-certificates).
_HASHED_NAME: Final = re.compile(r"[0-9a-f]{8}\.[0-9]+")


class Purpose(StrEnum):
    HTTP = "http"  # providers' endpoints (ALPN http/1.1, set by httpcore)
    MAIL = "mail"  # SMTP and POP3 (no ALPN)


class CaFileProblem(Exception):
    """A CA file that cannot be used; `rule` says why (a msgid or a Text, as settings rules)."""

    def __init__(self, rule: str | Text) -> None:
        super().__init__(str(rule))
        self.rule = rule


Signature = tuple[int, int, int, int]  # device, inode, size, mtime (ns)


class _Contexts:
    """The process's contexts by (purpose, CA file or None), with the CA file's signature."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # contexts are built on worker threads too
        self._built: dict[tuple[Purpose, str | None], tuple[Signature | None, ssl.SSLContext]] = {}

    def cached(self, purpose: Purpose, ca_file: str | None) -> ssl.SSLContext | None:
        """The context if it is built and its CA file unchanged; None otherwise. Never raises."""
        with self._lock:
            hit = self._built.get((purpose, ca_file))
        if hit is None:
            return None
        if ca_file is None:
            return hit[1]
        try:
            current = _signature(os.stat(ca_file))
        except OSError:
            return None  # `get` reports why
        return hit[1] if hit[0] == current else None

    def get(self, purpose: Purpose, ca_file: str | None) -> ssl.SSLContext:
        context = self.cached(purpose, ca_file)
        if context is not None:
            return context
        if ca_file is None:
            signature, context = None, _system_context()
        else:
            signature, context = _ca_file_context(ca_file)
        if purpose is Purpose.HTTP:
            context.set_alpn_protocols(["http/1.1"])  # what httpcore would set: one value, always
        with self._lock:
            self._built[(purpose, ca_file)] = (signature, context)
        return context

    def clear(self) -> None:
        with self._lock:
            self._built.clear()


_CONTEXTS: Final = _Contexts()


def client_context(trust: Trust, purpose: Purpose) -> ssl.SSLContext:
    """The context for a connection that trusts `trust` (cached; see the module's docstring).

    Raises:
        UsageError: the CA file cannot be used, or the system store holds no CA certificate;
            the message names the source and the fix.
    """
    try:
        return _CONTEXTS.get(purpose, trust.ca_file)
    except CaFileProblem as problem:
        raise unusable(trust, problem.rule) from None


async def client_context_async(trust: Trust, purpose: Purpose) -> ssl.SSLContext:
    """`client_context` for coroutines: a context not built yet is built on a worker thread, so
    loading the system store (milliseconds) does not stall the event loop."""
    context = _CONTEXTS.cached(purpose, trust.ca_file)
    if context is not None:
        return context
    return await asyncio.to_thread(client_context, trust, purpose)


def forget_contexts() -> None:
    """Drop every cached context (tests that change the environment OpenSSL reads)."""
    _CONTEXTS.clear()


def ca_file_rule(path: str) -> str | Text | None:
    """The rule the CA file at `path` breaks, or None when it holds a CA certificate: the check a
    connection makes, so a setting is refused when saved rather than at its first handshake."""
    try:
        _CONTEXTS.get(Purpose.MAIL, path)
    except CaFileProblem as problem:
        return problem.rule
    return None


def home_ca_file(environ: Mapping[str, str]) -> str | None:
    """TOKENPOST_CA_FILE, checked as a --ca-file is (None when unset or empty).

    Raises:
        UsageError: the variable does not name a usable CA file; the message names the variable.
    """
    path = environ.get(HOME_CA_VARIABLE) or None
    if path is None:
        return None
    trust = Trust(TrustSource.HOME_CA_FILE, path)
    if not is_absolute_path(path):
        raise unusable(trust, PATH_RULE)
    rule = ca_file_rule(path)
    if rule is not None:
        raise unusable(trust, rule)
    return path


def unusable(trust: Trust, rule: str | Text) -> UsageError:
    """The error for a trust source that cannot be used, naming it and the fix."""
    match trust.source:
        case TrustSource.CA_FILE:
            return UsageError(
                "cannot use the CA file {path} (--ca-file): {rule}; correct the --ca-file of the "
                "provider or setting",
                path=trust.ca_file,
                rule=_as_text(rule),
            )
        case TrustSource.HOME_CA_FILE:
            return UsageError(
                "cannot use the CA file {path} (TOKENPOST_CA_FILE): {rule}; set TOKENPOST_CA_FILE "
                "to a PEM file of CA certificates, or unset it to use the system trust store",
                path=trust.ca_file,
                rule=_as_text(rule),
            )
        case TrustSource.SYSTEM:
            return UsageError(
                "the system trust store holds no CA certificate ({reason}); install the "
                "ca-certificates package (Debian: apt-get install ca-certificates), or give a CA "
                "file with --ca-file or TOKENPOST_CA_FILE",
                reason=_as_text(rule),
            )


def verify_failed(
    server: str | Text,
    error: ssl.SSLCertVerificationError,
    trust: Trust,
    *,
    trusted: Text | None = None,
) -> TlsVerifyError:
    """The error for a certificate of `server` that did not verify against `trust`; `trusted`
    says what was trusted when that is more than `trust` (an https proxy and its provider)."""
    # Set by the ssl module on a real failure; absent on one made by hand.
    detail = getattr(error, "verify_message", None) or _reason(error)
    return TlsVerifyError(
        "the certificate of {server} did not verify: {detail} (trusted: {trust}); {fix}",
        server=server,
        detail=detail,
        trust=trusted or trust.describe(),
        fix=trust.verify_fix(),
    )


def handshake_reason(error: ssl.SSLError) -> str | Text:
    """Why a TLS handshake failed, in OpenSSL's words; a peer that offers only TLS versions older
    than 1.2 (which this policy refuses) is said to do so."""
    reason = _reason(error)
    if reason in _OLD_PROTOCOL_REASONS:
        return Text("the server offers no TLS version from 1.2 on ({reason})", reason=reason)
    return reason


def _new_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname on, CERT_REQUIRED
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    context.minimum_version = MINIMUM_VERSION
    return context


def _ca_file_context(path: str) -> tuple[Signature, ssl.SSLContext]:
    """A context trusting the CA file at `path` alone. Raises CaFileProblem."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise CaFileProblem(MISSING_CA_RULE) from None
    except OSError as error:
        raise CaFileProblem(_unreadable(error)) from None
    # Not a FIFO or a device: loading /dev/zero would never end.
    if not stat.S_ISREG(info.st_mode):
        raise CaFileProblem(NOT_A_FILE_RULE)
    if info.st_size > MAX_CA_FILE_BYTES:
        raise CaFileProblem(
            Text("is larger than {limit} MiB: not a CA file", limit=MAX_CA_FILE_BYTES >> 20)
        )
    context = _new_context()
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError:  # no PEM certificate in it at all
        raise CaFileProblem(NO_CA_RULE) from None
    except OSError as error:
        raise CaFileProblem(_unreadable(error)) from None
    if context.cert_store_stats().get("x509_ca", 0) == 0:
        raise CaFileProblem(NO_CA_RULE)  # certificates, but none of a CA (a server's own)
    return _signature(info), context


def _system_context() -> ssl.SSLContext:
    """A context trusting the system store. Raises CaFileProblem when it holds no CA at all."""
    context = _new_context()
    context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if context.cert_store_stats().get("x509_ca", 0) == 0 and not _hashed_directory_has_certs():
        paths = ssl.get_default_verify_paths()
        raise CaFileProblem(
            Text(
                "neither {file} nor {directory} holds one",
                file=os.environ.get(paths.openssl_cafile_env) or paths.openssl_cafile,
                directory=_capath_setting(),
            )
        )
    return context


def _capath_setting() -> str:
    paths = ssl.get_default_verify_paths()
    return os.environ.get(paths.openssl_capath_env) or paths.openssl_capath


def _hashed_directory_has_certs() -> bool:
    """Whether a directory of OpenSSL's default paths holds a hashed certificate. OpenSSL reads
    such a directory only when it verifies, so the loaded store's statistics cannot tell."""
    for directory in _capath_setting().split(os.pathsep):
        try:
            with os.scandir(directory) as entries:
                if any(_HASHED_NAME.fullmatch(entry.name) for entry in entries):
                    return True
        except OSError:
            continue
    return False


def _reason(error: ssl.SSLError) -> str:
    return str(error.reason) if getattr(error, "reason", None) else type(error).__name__


def _as_text(rule: str | Text) -> Text:
    """A rule as a parameter: a msgid is translated where shown, like a settings rule."""
    return rule if isinstance(rule, Text) else Text(rule)


def _signature(info: os.stat_result) -> Signature:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _unreadable(error: OSError) -> Text:
    return Text("cannot be read: {reason}", reason=error.strerror or type(error).__name__)
