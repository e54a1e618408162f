"""A private Dovecot POP3 server for tests, checking OAuth tokens at the sandbox.

Debian's Dovecot (`scripts/ensure-peers` installs it) runs as `dovecot -F -c CONF` with its own
base_dir, config, log and random ports on 127.0.0.1; the system service is never touched.
POP3 with STLS on one port and POP3S on another, certificate from the sandbox CA; SASL XOAUTH2
and OAUTHBEARER checked by RFC 7662 introspection at the sandbox (no cache: a revoked token fails
at once), PLAIN and LOGIN against a passwd-file. Mail belongs to Debian's `mail` user (Dovecot
refuses root mail processes), in BASE/home/<user>/Maildir; BASE is a directory of our own under
the system temp dir, since pytest's are 0700 root and `mail` could not enter them.

Dovecot counts a connection whose remote and local addresses are equal (127.0.0.1 to 127.0.0.1)
as secured: on the STLS port it accepts AUTH before STLS. Tests of "no token without TLS" must
look at what the client does, not at what this server refuses.

    dovecot = start_dovecot(authserver_dir)          # waits until both ports greet
    dovecot.add_message("alice@example.test", b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
    dovecot.maildir_count("alice@example.test")
    dovecot.set_password("carol@example.test", "pw")
    dovecot.stop()
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from peer_process import READY_TIMEOUT, log_tail, spawn, stop_process

MAIL_USER = "mail"
INTERNAL_GROUP = "dovecot"  # Debian's default_internal_user


class DovecotError(RuntimeError):
    """Dovecot is missing, did not start, or did not stop; the message holds its log."""


@dataclass(frozen=True, slots=True)
class _Authserver:
    issuer: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    client_id: str
    client_secret: str

    @classmethod
    def load(cls, directory: Path) -> _Authserver:
        raw = json.loads((directory / "ready.json").read_text(encoding="utf-8"))
        mailserver = raw["clients"]["mailserver"]
        return cls(
            issuer=raw["issuer"],
            ca_file=Path(raw["ca_file"]),
            cert_file=directory / "server.pem",
            key_file=directory / "server-key.pem",
            client_id=mailserver["id"],
            client_secret=mailserver["secret"],
        )


class Dovecot:
    """A running private Dovecot."""

    def __init__(
        self, process: subprocess.Popen[bytes], base: Path, ports: tuple[int, int], ca_file: Path
    ) -> None:
        self.process = process
        self.base = base
        self.host = "127.0.0.1"
        self.pop3_port, self.pop3s_port = ports
        self.ca_file = ca_file
        self.log_path = base / "dovecot.log"
        self._mail = pwd.getpwnam(MAIL_USER)

    def tls_context(self) -> ssl.SSLContext:
        """A client context that trusts the sandbox CA (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def maildir(self, user: str) -> Path:
        return self.base / "home" / user / "Maildir"

    def add_message(self, user: str, content: bytes) -> Path:
        """Deliver `content` into the user's Maildir/new (as the `mail` user would)."""
        maildir = self.maildir(user)
        for path in (maildir.parent, maildir, maildir / "tmp", maildir / "new", maildir / "cur"):
            self._mail_dir(path)
        name = f"{time.time_ns()}.P{os.getpid()}.tokenpost-test"
        temporary = maildir / "tmp" / name
        temporary.write_bytes(content)
        os.chown(temporary, self._mail.pw_uid, self._mail.pw_gid)
        os.chmod(temporary, 0o600)
        final = maildir / "new" / name
        os.replace(temporary, final)
        return final

    def maildir_count(self, user: str) -> int:
        """Messages in the user's Maildir (new and cur)."""
        maildir = self.maildir(user)
        return sum(
            1
            for sub in ("new", "cur")
            if (maildir / sub).is_dir()
            for path in (maildir / sub).iterdir()
            if path.is_file()
        )

    def clear_mailboxes(self, timeout: float = 10.0) -> None:
        """Remove every user's home and mail, once no POP3 session of this instance is left.

        A session's process may outlive its connection for a moment; removing a Maildir under
        it would only produce errors in the log.
        """
        deadline = time.monotonic() + timeout
        while self._mail_processes():
            if time.monotonic() > deadline:
                raise DovecotError(f"POP3 sessions still running:\n{self.log()}")
            time.sleep(0.02)
        for home in (self.base / "home").iterdir():
            shutil.rmtree(home)

    def set_password(self, user: str, password: str) -> None:
        """Let `user` log in with PLAIN or LOGIN (passwd-file, read on every login)."""
        path = self.base / "passwd"
        lines = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if not line.startswith(user + ":")
        ]
        lines.append(f"{user}:{{PLAIN}}{password}::::::")
        _write_for_dovecot(path, "\n".join(lines) + "\n")

    def log(self) -> str:
        return log_tail(self.log_path, lines=200)

    def stop(self) -> int:
        """SIGTERM, wait, remove BASE; returns the exit status (SIGKILL if it will not stop)."""
        status = stop_process(self.process)
        shutil.rmtree(self.base, ignore_errors=True)
        return status

    def _mail_processes(self) -> list[int]:
        """Children of this instance's master running a mail protocol (`pop3`)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue  # ended meanwhile
            # "pid (comm) state ppid …": comm may hold spaces, so split after its ")".
            comm = text[text.index("(") + 1 : text.rindex(")")]
            ppid = int(text[text.rindex(")") + 2 :].split()[1])
            if ppid == self.process.pid and comm == "pop3":
                found.append(int(stat.parent.name))
        return found

    def _mail_dir(self, path: Path) -> None:
        if not path.is_dir():
            path.mkdir(mode=0o700)
            os.chown(path, self._mail.pw_uid, self._mail.pw_gid)


def start_dovecot(authserver_dir: Path, *, timeout: float = READY_TIMEOUT) -> Dovecot:
    """Write a private configuration, start Dovecot and wait until both ports greet.

    The ports are picked free just before the start; if another process takes one meanwhile,
    Dovecot is started again on new ports (up to three times).

    Raises:
        DovecotError: no `dovecot` binary, or it exited or did not answer in `timeout` seconds;
            the message holds the end of its log.
    """
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(binary).exists():
        raise DovecotError("dovecot is not installed: run scripts/ensure-peers")
    authserver = _Authserver.load(authserver_dir)
    for _ in range(2):
        try:
            return _start_once(binary, authserver, timeout)
        except _PortTakenError:
            continue
    return _start_once(binary, authserver, timeout)


class _PortTakenError(DovecotError):
    pass


def _start_once(binary: str, authserver: _Authserver, timeout: float) -> Dovecot:
    base = Path(tempfile.mkdtemp(prefix="tokenpost-dovecot-"))
    try:
        os.chmod(base, 0o755)  # noqa: S103  (the `mail` and `dovecot` users must enter it)
        ports = _free_ports(2)
        config = _write_config(base, authserver, (ports[0], ports[1]))
        process = spawn([binary, "-F", "-c", str(config)], base / "dovecot.log")
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    dovecot = Dovecot(process, base, (ports[0], ports[1]), base / "ca.pem")
    try:
        _wait_for_greetings(dovecot, timeout)
    except DovecotError as exc:
        tail = dovecot.log()
        dovecot.stop()
        if "Address already in use" in tail:
            raise _PortTakenError(tail) from None
        raise DovecotError(f"dovecot did not start ({exc}):\n{tail}") from None
    return dovecot


def _write_config(base: Path, authserver: _Authserver, ports: tuple[int, int]) -> Path:
    mail = pwd.getpwnam(MAIL_USER)
    (base / "ssl").mkdir(mode=0o700)
    shutil.copyfile(authserver.cert_file, base / "ssl" / "server.pem")
    shutil.copyfile(authserver.key_file, base / "ssl" / "server-key.pem")
    shutil.copyfile(authserver.ca_file, base / "ca.pem")
    os.chmod(base / "ca.pem", 0o644)
    (base / "home").mkdir(mode=0o755)
    os.chown(base / "home", mail.pw_uid, mail.pw_gid)
    # RFC 7662 §2.1: the resource server authenticates to the introspection endpoint.
    user, secret = quote(authserver.client_id, safe=""), quote(authserver.client_secret, safe="")
    credentials = f"{user}:{secret}"
    host_and_path = authserver.issuer.removeprefix("https://") + "/introspect"
    _write_for_dovecot(
        base / "oauth2.conf.ext",
        f"""introspection_mode = post
introspection_url = https://{credentials}@{host_and_path}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
tls_ca_cert_file = {base / "ca.pem"}
""",
    )
    _write_for_dovecot(base / "passwd", "")
    config = base / "dovecot.conf"
    _write_private(
        config,
        _CONFIG.format(
            base=base, pop3=ports[0], pop3s=ports[1], uid=mail.pw_uid, mail_user=MAIL_USER
        ),
    )
    return config


_CONFIG = """\
instance_name = tokenpost-{pop3}
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = required
ssl_cert = <{base}/ssl/server.pem
ssl_key = <{base}/ssl/server-key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = xoauth2 oauthbearer plain login
auth_verbose = yes
auth_cache_size = 0
# Dovecot delays every failed login by 2 s by default; tests fail logins on purpose.
auth_failure_delay = 0
first_valid_uid = {uid}
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv

service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
    ssl = yes
  }}
}}

# No auth penalty (growing delays after failed logins from one IP): tests fail logins on
# purpose, all from 127.0.0.1. Without access to this socket the auth process skips it.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {base}/oauth2.conf.ext
}}

passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {base}/passwd
}}

userdb {{
  driver = static
  args = uid={mail_user} gid={mail_user} home={base}/home/%u
}}
"""


def _wait_for_greetings(dovecot: Dovecot, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = {dovecot.pop3_port: False, dovecot.pop3s_port: True}
    while pending:
        if dovecot.process.poll() is not None:
            raise DovecotError(f"exited with status {dovecot.process.returncode}")
        if time.monotonic() > deadline:
            raise DovecotError(f"no greeting after {timeout:.0f} s")
        for port, implicit_tls in list(pending.items()):
            if _greets(dovecot, port, implicit_tls=implicit_tls):
                del pending[port]
        time.sleep(0.05)


def _greets(dovecot: Dovecot, port: int, *, implicit_tls: bool) -> bool:
    try:
        with socket.create_connection((dovecot.host, port), timeout=2) as raw:
            if implicit_tls:
                with dovecot.tls_context().wrap_socket(raw, server_hostname=dovecot.host) as tls:
                    return tls.recv(512).startswith(b"+OK")
            return raw.recv(512).startswith(b"+OK")
    except OSError:
        return False


def _free_ports(count: int) -> list[int]:
    """Distinct ports free on 127.0.0.1 right now (all probes held open together)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def _write_for_dovecot(path: Path, text: str) -> None:
    """A file the auth process reads after dropping to the `dovecot` user (0640 root:dovecot)."""
    temporary = path.with_name(f".{path.name}.tmp")
    _write_private(temporary, text)
    os.chown(temporary, 0, grp.getgrnam(INTERNAL_GROUP).gr_gid)
    os.chmod(temporary, 0o640)
    os.replace(temporary, path)
