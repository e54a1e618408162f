"""How tokenpost reaches a peer: whose certificates it trusts, and (for providers) which proxy.

One TLS policy for every connection (HTTP to providers, SMTP, POP3): a certificate is verified
against exactly one trust source, chosen here and nowhere else:

1. the provider's or mail setting's own ``--ca-file``;
2. else the home-wide default CA file, the ``TOKENPOST_CA_FILE`` variable (read once, at start);
3. else the system trust store (OpenSSL's default paths; on Debian /etc/ssl/certs, where
   ``update-ca-certificates`` installs a site's own CAs).

A CA file replaces the system store, it does not add to it: with one, exactly that file's
certificates are trusted. The adapters build the TLS contexts (`adapters.tls`); the services use
`Trust` only to tell the administrator which source a connection used.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from tokenpost.text import Text

HOME_CA_VARIABLE: Final = "TOKENPOST_CA_FILE"


class TrustSource(StrEnum):
    CA_FILE = "ca_file"  # the provider's or setting's own --ca-file
    HOME_CA_FILE = "home_ca_file"  # TOKENPOST_CA_FILE
    SYSTEM = "system"  # the system trust store


@dataclass(frozen=True, slots=True)
class Trust:
    """The certificates a connection trusts: a CA file (`ca_file`) or the system store (None)."""

    source: TrustSource
    ca_file: str | None = None

    def describe(self) -> Text:
        """What is trusted, as the administrator reads it (in check steps and TLS errors)."""
        match self.source:
            case TrustSource.CA_FILE:
                return Text("the CA file {path} (--ca-file)", path=self.ca_file)
            case TrustSource.HOME_CA_FILE:
                return Text("the CA file {path} (TOKENPOST_CA_FILE)", path=self.ca_file)
            case TrustSource.SYSTEM:
                return Text("the system trust store")

    def verify_fix(self) -> Text:
        """What to do when a peer's certificate did not verify against this source."""
        match self.source:
            case TrustSource.CA_FILE:
                return Text(
                    "check that the CA file given with --ca-file holds the CA that signs the "
                    "certificate, that the server name is the one in the certificate, and the "
                    "device's clock"
                )
            case TrustSource.HOME_CA_FILE:
                return Text(
                    "check that the CA file in TOKENPOST_CA_FILE holds the CA that signs the "
                    "certificate (a --ca-file of the provider or setting takes precedence), that "
                    "the server name is the one in the certificate, and the device's clock"
                )
            case TrustSource.SYSTEM:
                return Text(
                    "if your own CA or a TLS-inspecting proxy signs the certificate, install that "
                    "CA in the system trust store (Debian: /usr/local/share/ca-certificates, then "
                    "update-ca-certificates) or give its certificate with --ca-file or "
                    "TOKENPOST_CA_FILE; check that the server name is the one in the certificate "
                    "and the device's clock"
                )


SYSTEM_TRUST: Final = Trust(TrustSource.SYSTEM)


def trust_for(ca_file: str | None, home_ca_file: str | None) -> Trust:
    """The trust source of a connection whose provider or setting has `ca_file` (or None), in a
    home whose default CA file is `home_ca_file` (TOKENPOST_CA_FILE, or None)."""
    if ca_file:
        return Trust(TrustSource.CA_FILE, ca_file)
    if home_ca_file:
        return Trust(TrustSource.HOME_CA_FILE, home_ca_file)
    return SYSTEM_TRUST


@dataclass(frozen=True, slots=True)
class Network:
    """How to reach a provider's endpoints: its own CA file and proxy (each None: the home's
    default, TOKENPOST_CA_FILE or the system store; the environment's HTTPS_PROXY/NO_PROXY)."""

    ca_file: str | None = None
    proxy: str | None = None
