"""`ports.MailDrop` on a Maildir (https://cr.yp.to/proto/maildir.html) that survives kill -9.

Theory of operation. A message is written into ``tmp/`` under a unique name, flushed and
fsynced, and renamed into ``new/``. Its name embeds a key derived from (setting id, UIDL), so a
delivered message is recognisable in ``new/`` or ``cur/`` (with or without a ``:2,…`` info
suffix) after any crash. Its attachments are extracted next (`adapters.attachments`). `sync` then
fsyncs ``new/`` and only after that appends the keys to the setting's ledger
(``.tokenpost-pop-NAME.uidl``, append-only, fsynced), which remembers a delivery after the user
moved or deleted the message. A message counts as delivered when its key is in the ledger or in
``new/`` or ``cur/``.

Why this order. The file is durable before its name is (fsync before rename), so a name found
after a power loss never stands for a partial message; the ledger never gets ahead of the
folder (``new/`` is synced before the ledger is written), so it never claims a message the folder
could lose. The service deletes server copies (QUIT) only after `sync`, so directory and ledger
fsyncs are paid once per session, not per message. A kill at any point leaves one of: a partial
file in ``tmp/`` (removed by `recover`; the message is still on the server and is fetched again);
a message in ``new/`` but not in the ledger (`recover` extracts its attachments, idempotently,
and records it); or a delivered and recorded message whose server copy the next run deletes.
None of them puts a message into the folder twice.

Only the holder of the setting's lock file in the folder writes the setting's files, so
`recover` may remove partial files carrying the setting's tag without racing a live writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import socket
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

from tokenpost.adapters.attachments import TMP_PREFIX, extract, fsync_dir
from tokenpost.errors import DeliveryError
from tokenpost.ports import DeliveredMessage
from tokenpost.settings.model import PopSetting

if TYPE_CHECKING:
    from tokenpost.ports import MailDelivery, MailDrop, MailDropOpener

ATTACHMENTS: Final = "attachments"
_WRITE_BUFFER: Final = 256 * 1024
# A key: 8 hex digits naming the setting, 32 naming (setting id, UIDL): 128 bits, no collisions.
_KEY: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{32}")
# Our unique names: "<seconds>.M<microseconds>P<pid>_tp<key>.<host>" (Maildir's time.unique.host).
_NAME: Final = re.compile(r"\d+\.M\d+P\d+_tp(?P<key>[0-9a-f]{8}-[0-9a-f]{32})\.")
_UIDL: Final = re.compile(r"[\x21-\x7e]{1,70}")  # RFC 1939 §7


def setting_tag(setting_id: str) -> str:
    return hashlib.sha256(b"tokenpost-setting\0" + setting_id.encode()).hexdigest()[:8]


def delivery_key(setting_id: str, uidl: str) -> str:
    """The key of one message of one setting, as it appears in file names and the ledger."""
    digest = hashlib.sha256(f"{setting_id}\0{uidl}".encode()).hexdigest()[:32]
    return f"{setting_tag(setting_id)}-{digest}"


def key_of(file_name: str) -> str | None:
    """The key in one of our message names (``new/`` or ``cur/``, any info suffix), else None."""
    found = _NAME.match(file_name.split(":", 1)[0])
    return found["key"] if found else None


def _file_stem(setting_id: str) -> str:
    # Setting names are letters, digits, "_", "." and "-": "pop:fax" -> ".tokenpost-pop-fax".
    return ".tokenpost-" + setting_id.replace(":", "-").replace("/", "_")


def ledger_name(setting_id: str) -> str:
    return _file_stem(setting_id) + ".uidl"


@contextlib.asynccontextmanager
async def open_maildir(setting: PopSetting) -> AsyncIterator[MaildirDrop]:
    """`ports.MailDropOpener`: the drop of `setting.deliver_to` (created 0700 when missing),
    under an exclusive flock on ``.tokenpost-pop-NAME.lock`` in the folder until the block exits.
    The kernel drops the lock when its holder dies, so a killed run never blocks the next."""
    folder = Path(setting.deliver_to)
    fd = await asyncio.to_thread(_open_lock, folder, setting.setting_id)
    try:
        try:
            await _flock_exclusive(fd)
        except OSError as error:  # e.g. ENOLCK: a file system without locks
            raise _folder_error(folder, error) from None
        drop = await asyncio.to_thread(MaildirDrop.open, folder, setting.setting_id)
        try:
            yield drop
        finally:
            # Record what was stored, even when the session failed: else `recover` would.
            with contextlib.suppress(DeliveryError):
                await asyncio.shield(drop.sync())
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def _open_lock(folder: Path, setting_id: str) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return os.open(folder / (_file_stem(setting_id) + ".lock"), flags, 0o600)
    except OSError as error:
        raise _folder_error(folder, error) from None


async def _flock_exclusive(fd: int) -> None:
    """Poll for the flock (5 ms doubling to 200 ms): the event loop never blocks, and a
    cancelled waiter leaves nothing behind."""
    delay = 0.005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
        else:
            return


class _Ledger:
    """The append-only record of a setting's delivered keys, one ``KEY [UIDL]`` line each. A
    torn last line (a kill mid-append) is ignored: its message is in the folder and `recover`
    records it again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: set[str] = set()
        self._torn = False

    def load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        *complete, last = data.split(b"\n")
        self._torn = bool(last)
        for line in complete:
            key = line.split(b" ", 1)[0].decode("ascii", "replace")
            if _KEY.fullmatch(key):
                self.keys.add(key)

    def append(self, entries: Sequence[tuple[str, str | None]]) -> None:
        """Append and fsync (raises OSError)."""
        lines = [
            key + (f" {uidl}" if uidl and _UIDL.fullmatch(uidl) else "") for key, uidl in entries
        ]
        text = ("\n" if self._torn else "") + "".join(line + "\n" for line in lines)
        created = not self.path.exists()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o600)
        try:
            view = memoryview(text.encode("ascii"))
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        self._torn = False
        self.keys.update(key for key, _ in entries)


class MaildirDrop:
    """One setting's view of a Maildir; see the module docstring. Not shared between tasks."""

    def __init__(self, folder: Path, setting_id: str) -> None:
        self.folder = folder
        self.setting_id = setting_id
        self._tag = setting_tag(setting_id)
        self._ledger = _Ledger(folder / ledger_name(setting_id))
        self._stored: set[str] = set()  # keys of messages in new/ and cur/ (every setting's)
        self._unrecorded: dict[str, Path] = {}  # ours, stored but missing from the ledger
        self._unsynced: list[tuple[str, str]] = []  # (key, UIDL) committed since the last sync
        self._host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")

    @classmethod
    def open(cls, folder: Path, setting_id: str) -> MaildirDrop:
        drop = cls(folder, setting_id)
        try:
            for directory in (folder, folder / "tmp", folder / "new", folder / "cur"):
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            drop._ledger.load()
            drop._scan()
        except OSError as error:
            raise _folder_error(folder, error) from None
        return drop

    def _scan(self) -> None:
        # new/ before cur/: a reader moving a message meanwhile moves it new -> cur.
        for sub in ("new", "cur"):
            with os.scandir(self.folder / sub) as entries:
                for entry in entries:
                    key = key_of(entry.name)
                    if key is None:
                        continue
                    self._stored.add(key)
                    if key.startswith(self._tag) and key not in self._ledger.keys:
                        self._unrecorded[key] = Path(entry.path)

    async def recover(self) -> list[DeliveredMessage]:
        return await asyncio.to_thread(self._recover)

    def _recover(self) -> list[DeliveredMessage]:
        try:
            self._remove_partial()
            finished = [
                DeliveredMessage(str(path), _optional(self._extract_if_there(path)))
                for path in self._unrecorded.values()
            ]
            if self._unrecorded:
                self._ledger.append([(key, None) for key in self._unrecorded])
        except OSError as error:
            raise _folder_error(self.folder, error) from None
        self._unrecorded.clear()
        return finished

    def _extract_if_there(self, message: Path) -> Path | None:
        try:
            return extract(message, self._attachments_of(message))
        except DeliveryError:
            if message.exists():
                raise
            return None  # the user took it away meanwhile: delivered all the same

    def _remove_partial(self) -> None:
        for entry in os.scandir(self.folder / "tmp"):
            key = key_of(entry.name)
            if key is not None and key.startswith(self._tag):
                os.unlink(entry.path)
        attachments = self.folder / ATTACHMENTS
        if attachments.is_dir():
            for entry in os.scandir(attachments):
                key = key_of(entry.name.removeprefix(TMP_PREFIX))
                if entry.name.startswith(TMP_PREFIX) and key and key.startswith(self._tag):
                    shutil.rmtree(entry.path, ignore_errors=True)

    def delivered(self, uidl: str) -> bool:
        key = delivery_key(self.setting_id, uidl)
        return key in self._ledger.keys or key in self._stored

    async def begin(self, uidl: str) -> MaildirDelivery:
        key = delivery_key(self.setting_id, uidl)
        now = time.time()
        name = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}_tp{key}.{self._host}"
        tmp = self.folder / "tmp" / name
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            file = os.fdopen(os.open(tmp, flags, 0o600), "wb", buffering=_WRITE_BUFFER)
        except OSError as error:
            raise _folder_error(self.folder, error) from None
        return MaildirDelivery(self, key, uidl, tmp, file)

    def _attachments_of(self, message: Path) -> Path:
        return self.folder / ATTACHMENTS / message.name.split(":", 1)[0]

    def _commit(self, key: str, uidl: str, tmp: Path) -> DeliveredMessage:
        """Runs in a worker thread: rename into new/, extract the attachments."""
        target = self.folder / "new" / tmp.name
        try:
            os.rename(tmp, target)
        except OSError as error:
            _unlink(tmp)
            raise _store_error(self.folder, error) from None
        self._stored.add(key)
        attachments = extract(target, self._attachments_of(target))
        # Recorded only once its attachments are out: else `recover` finishes them.
        self._unsynced.append((key, uidl))
        return DeliveredMessage(str(target), _optional(attachments))

    async def sync(self) -> None:
        if self._unsynced:
            await asyncio.to_thread(self._sync)

    def _sync(self) -> None:
        try:
            fsync_dir(self.folder / "new")
            self._ledger.append(self._unsynced)
        except OSError as error:
            raise DeliveryError(
                f"cannot sync the delivery folder {self.folder} ({error.strerror or error}): "
                "the messages stay on the server"
            ) from None
        self._unsynced.clear()


class MaildirDelivery:
    """One message being written into ``tmp/``; see `ports.MailDelivery`."""

    def __init__(self, drop: MaildirDrop, key: str, uidl: str, tmp: Path, file: BinaryIO) -> None:
        self._drop = drop
        self._key = key
        self._uidl = uidl
        self._tmp = tmp
        self._file = file
        self._error: OSError | None = None
        self._committing = False

    def write(self, chunk: bytes) -> None:
        if self._error is not None:
            return
        try:
            self._file.write(chunk)
        except OSError as error:
            self._error = error

    async def commit(self) -> DeliveredMessage:
        if self._committing:
            raise RuntimeError("a delivery is committed once")
        # From here the worker thread decides the outcome, even if this task is cancelled:
        # `discard` leaves the files alone and `recover` sorts out whatever a kill left.
        self._committing = True
        return await asyncio.to_thread(self._commit)

    def _commit(self) -> DeliveredMessage:
        try:
            if self._error is not None:
                raise self._error
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as error:
            self._close_quietly()
            _unlink(self._tmp)
            raise _store_error(self._drop.folder, error) from None
        return self._drop._commit(self._key, self._uidl, self._tmp)

    def discard(self) -> None:
        if self._committing:
            return
        self._committing = True
        self._close_quietly()
        _unlink(self._tmp)

    def _close_quietly(self) -> None:
        # The file is being thrown away: a failed flush changes nothing.
        with contextlib.suppress(OSError):
            self._file.close()


def _unlink(path: Path) -> None:
    # Already gone, or unremovable: `recover` tries again.
    with contextlib.suppress(OSError):
        os.unlink(path)


def _optional(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _folder_error(folder: Path, error: OSError) -> DeliveryError:
    return DeliveryError(f"cannot use the delivery folder {folder}: {error.strerror or error}")


def _store_error(folder: Path, error: OSError) -> DeliveryError:
    reason = error.strerror or error
    return DeliveryError(f"cannot store a message in {folder}: {reason}; it stays on the server")


if TYPE_CHECKING:

    def _implements_ports(drop: MaildirDrop, delivery: MaildirDelivery) -> None:  # for mypy
        opener: MailDropOpener = open_maildir
        as_drop: MailDrop = drop
        as_delivery: MailDelivery = delivery
        del opener, as_drop, as_delivery
