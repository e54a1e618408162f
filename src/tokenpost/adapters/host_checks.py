"""Checks of setting values on this host's file system: CA files and POP delivery folders.

The settings rules (`settings.validate`) check a path's form only, since the settings core does no
I/O; these checks look at the file system when a setting is saved or imported, so an
administrator learns of a typo or a wrong file then, not at the first TLS handshake or the first
message received. A CA file is loaded the way the TLS code loads it (`ssl`, PEM) and must hold
at least one CA certificate. A delivery folder that does not exist yet is fine (the first receive
creates it); one that exists must be a directory.
"""

from __future__ import annotations

import os
import ssl
import stat
from typing import Final

from tokenpost.errors import FieldProblem
from tokenpost.settings.model import PopSetting, Provider, SmtpSetting
from tokenpost.text import N_, Text

# CA bundles are well under 1 MiB (Debian's whole system bundle is about 200 KiB).
MAX_CA_FILE_BYTES: Final = 16 * 1024 * 1024

NO_CA_RULE: Final = N_("holds no CA certificate (a PEM file of CA certificates is needed)")
MISSING_CA_RULE: Final = N_("no such file (a PEM file of CA certificates)")
NOT_A_FILE_RULE: Final = N_("must be a regular file (a PEM file of CA certificates)")
NOT_A_DIRECTORY_RULE: Final = N_("exists and is not a directory (a delivery folder is needed)")
UNDER_A_FILE_RULE: Final = N_("cannot be created: a part of the path is a file, not a directory")


class FileSystemChecks:
    """`ports.HostChecks` on the local file system."""

    def problems(self, item: Provider | SmtpSetting | PopSetting) -> tuple[FieldProblem, ...]:
        found: list[FieldProblem] = []
        if item.ca_file is not None and item.ca_file.startswith("/"):
            rule = ca_file_rule(item.ca_file)
            if rule is not None:
                found.append(FieldProblem("ca_file", rule))
        if isinstance(item, PopSetting) and item.deliver_to.startswith("/"):
            rule = deliver_to_rule(item.deliver_to)
            if rule is not None:
                found.append(FieldProblem("deliver_to", rule))
        return tuple(found)


def ca_file_rule(path: str) -> str | Text | None:
    """The rule the CA file at `path` breaks, or None when it holds a CA certificate."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return MISSING_CA_RULE
    except OSError as error:
        return _unreadable(error)
    # Not a FIFO or a device: loading /dev/zero would never end.
    if not stat.S_ISREG(info.st_mode):
        return NOT_A_FILE_RULE
    if info.st_size > MAX_CA_FILE_BYTES:
        return Text("is larger than {limit} MiB: not a CA file", limit=MAX_CA_FILE_BYTES >> 20)
    return _certificate_rule(path)


def _certificate_rule(path: str) -> str | Text | None:
    """Load the file as the TLS code does; at least one certificate must be a CA's."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError:  # no PEM certificate in it at all
        return NO_CA_RULE
    except OSError as error:
        return _unreadable(error)
    if context.cert_store_stats().get("x509_ca", 0) == 0:
        return NO_CA_RULE  # certificates, but none of a CA (a server's own certificate)
    return None


def deliver_to_rule(path: str) -> str | None:
    """The rule the delivery folder `path` breaks, or None."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None  # created by the first receive
    except NotADirectoryError:
        return UNDER_A_FILE_RULE
    except OSError:
        return None  # a folder that cannot be looked at now may be usable by `serve`'s user
    return None if stat.S_ISDIR(info.st_mode) else NOT_A_DIRECTORY_RULE


def _unreadable(error: OSError) -> Text:
    return Text("cannot be read: {reason}", reason=error.strerror or type(error).__name__)
