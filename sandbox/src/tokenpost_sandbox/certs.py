"""The sandbox's TLS files: a throw-away CA and one server certificate, made by trustme.

Tests verify the sandbox exactly as tokenpost verifies a real provider: against a CA file
(`ca.pem`), never by turning verification off. The CA's private key stays in memory and is never
written: nothing else can be signed by this CA once the process is gone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trustme

# The last name resolves nowhere (RFC 6761 .test): tests reach it only through a test proxy that
# maps it to 127.0.0.1, since loopback names never go through a proxy of the environment.
PROXIED_HOST: Final = "sandbox.tokenpost.test"
DEFAULT_HOSTS: Final = ("127.0.0.1", "::1", "localhost", PROXIED_HOST)
CA_FILE: Final = "ca.pem"
CERT_FILE: Final = "server.pem"
KEY_FILE: Final = "server-key.pem"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def in_directory(cls, directory: Path) -> TlsFiles:
        """The file names `write_tls_files` uses in `directory` (for a peer that reuses them)."""
        return cls(directory / CA_FILE, directory / CERT_FILE, directory / KEY_FILE)


def write_tls_files(directory: Path, *, hosts: Sequence[str] = DEFAULT_HOSTS) -> TlsFiles:
    """Create a CA and a server certificate for `hosts` in `directory`.

    Writes `ca.pem`, `server.pem` (the leaf, then the CA) and `server-key.pem` (mode 0600).
    """
    ca = trustme.CA(organization_name="tokenpost sandbox")
    leaf = ca.issue_cert(*hosts, organization_name="tokenpost sandbox")
    files = TlsFiles.in_directory(directory)
    ca.cert_pem.write_to_path(str(files.ca_file))
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems) + ca.cert_pem.bytes()
    files.cert_file.write_bytes(chain)
    fd = os.open(files.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(leaf.private_key_pem.bytes())
    return files
