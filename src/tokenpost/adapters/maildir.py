"""`ports.MailDrop` on a Maildir (https://cr.yp.to/proto/maildir.html) that survives kill -9.

Theory of operation. A message is written into ``tmp/`` under a unique name, flushed and
fsynced, and renamed into ``new/``. Its name embeds a key derived from (setting id, UIDL), so a
delivered message is recognisable in ``new/`` or ``cur/`` (with or without a ``:2,…`` info
suffix) after any crash. Its attachments are extracted next (`adapters.attachments`). `sync` then
fsyncs ``new/`` and only after that records the keys: first as owing the setting's command (when
it has one; ``.tokenpost-pop-NAME.owed``), then in the setting's ledger
(``.tokenpost-pop-NAME.uidl``), both fsynced (`adapters.maildir_records`). The ledger remembers a
delivery after the user moved or deleted the message. A message counts as delivered when its key
is in the ledger or in ``new/`` or ``cur/``.

Why this order. The file is durable before its name is (fsync before rename), so a name found
after a power loss never stands for a partial message; the ledger never gets ahead of the
folder (``new/`` is synced before the ledger is written), so it never claims a message the folder
could lose; and it never gets ahead of the owed record, so a message it records always has its
command owed or done. The service deletes server copies (QUIT) only after `sync`, so directory
and record fsyncs are paid once per session, not per message. A kill at any point leaves one of:
a partial file in ``tmp/`` (removed by `recover`; the message is still on the server and is
fetched again); a message in ``new/`` but not in the ledger, its command owed or not (`recover`
extracts its attachments, idempotently, and records it and its command); or a delivered and
recorded message with its command owed, whose server copy the next run deletes. None of them
puts a message into the folder twice or loses its command.

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
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final

from tokenpost.adapters.attachments import TMP_PREFIX, extract, fsync_dir
from tokenpost.adapters.maildir_records import (
    Ledger,
    OwedRecord,
    ledger_name,
    owed_name,
    record_stem,
)
from tokenpost.errors import DeliveryError
from tokenpost.ports import DeliveredMessage, OwedCommand
from tokenpost.settings.model import PopSetting

if TYPE_CHECKING:
    from tokenpost.ports import MailDelivery, MailDrop, MailDropOpener

__all__ = ["MaildirDrop", "delivery_key", "key_of", "ledger_name", "open_maildir", "owed_name"]

ATTACHMENTS: Final = "attachments"
_WRITE_BUFFER: Final = 256 * 1024
# Our unique names: "<seconds>.M<microseconds>P<pid>_tp<key>.<host>" (Maildir's time.unique.host).
_NAME: Final = re.compile(r"\d+\.M\d+P\d+_tp(?P<key>[0-9a-f]{8}-[0-9a-f]{32})\.")


def setting_tag(setting_id: str) -> str:
    return hashlib.sha256(b"tokenpost-setting\0" + setting_id.encode()).hexdigest()[:8]


def delivery_key(setting_id: str, uidl: str) -> str:
    """The key of one message of one setting, as it appears in file names and the records."""
    digest = hashlib.sha256(f"{setting_id}\0{uidl}".encode()).hexdigest()[:32]
    return f"{setting_tag(setting_id)}-{digest}"


def key_of(file_name: str) -> str | None:
    """The key in one of our message names (``new/`` or ``cur/``, any info suffix), else None."""
    found = _NAME.match(file_name.split(":", 1)[0])
    return found["key"] if found else None


@contextlib.asynccontextmanager
async def open_maildir(setting: PopSetting) -> AsyncIterator[MaildirDrop]:
    """`ports.MailDropOpener`: the drop of `setting.deliver_to` (created 0700 when missing),
    under an exclusive flock on ``.tokenpost-pop-NAME.lock`` in the folder until the block exits.
    The kernel drops the lock when its holder dies, so a killed run never blocks the next. Each
    message the drop records owes the setting's command when the setting has one."""
    folder = Path(setting.deliver_to)
    fd = await asyncio.to_thread(_open_lock, folder, setting.setting_id)
    try:
        try:
            await _flock_exclusive(fd)
        except OSError as error:  # e.g. ENOLCK: a file system without locks
            raise _folder_error(folder, setting.setting_id, error) from None
        drop = await asyncio.to_thread(
            MaildirDrop.open, folder, setting.setting_id, owes_commands=bool(setting.command)
        )
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
        return os.open(folder / (record_stem(setting_id) + ".lock"), flags, 0o600)
    except OSError as error:
        raise _folder_error(folder, setting_id, error) from None


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


class MaildirDrop:
    """One setting's view of a Maildir; see the module docstring. Not shared between tasks."""

    def __init__(self, folder: Path, setting_id: str, *, owes_commands: bool = False) -> None:
        self.folder = folder
        self.setting_id = setting_id
        self.owes_commands = owes_commands
        self._tag = setting_tag(setting_id)
        self._ledger = Ledger(folder / ledger_name(setting_id))
        self._owed = OwedRecord(folder / owed_name(setting_id))
        self._stored: set[str] = set()  # keys of messages in new/ and cur/ (every setting's)
        self._paths: dict[str, Path] = {}  # ours: key -> where the message was last seen
        self._unrecorded: dict[str, Path] = {}  # ours, stored but missing from the ledger
        # (key, UIDL, file name) committed since the last sync
        self._unsynced: list[tuple[str, str, str]] = []
        self._host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")

    @classmethod
    def open(cls, folder: Path, setting_id: str, *, owes_commands: bool = False) -> MaildirDrop:
        drop = cls(folder, setting_id, owes_commands=owes_commands)
        try:
            for directory in (folder, folder / "tmp", folder / "new", folder / "cur"):
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            drop._ledger.load()
            drop._owed.load()
            drop._scan()
        except OSError as error:
            raise _folder_error(folder, setting_id, error) from None
        return drop

    def _messages(self) -> Iterator[tuple[str, Path]]:
        """(key, path) of every message with one of our names, of any setting (raises OSError).
        new/ before cur/: a reader moving a message meanwhile moves it new -> cur."""
        for sub in ("new", "cur"):
            with os.scandir(self.folder / sub) as entries:
                for entry in entries:
                    key = key_of(entry.name)
                    if key is not None:
                        yield key, Path(entry.path)

    def _scan(self) -> None:
        for key, path in self._messages():
            self._stored.add(key)
            if key.startswith(self._tag):
                self._paths[key] = path
                if key not in self._ledger.keys:
                    self._unrecorded[key] = path

    async def recover(self) -> list[DeliveredMessage]:
        return await asyncio.to_thread(self._recover)

    def _recover(self) -> list[DeliveredMessage]:
        # Oldest first: the names start with the time of delivery.
        unrecorded = sorted(self._unrecorded.items(), key=lambda item: item[1].name)
        try:
            self._remove_partial()
            finished = [
                DeliveredMessage(str(path), _optional(self._extract_if_there(path)))
                for _, path in unrecorded
            ]
            if unrecorded:
                if self.owes_commands:  # before the ledger: see the module docstring
                    self._owed.owe([(key, path.name) for key, path in unrecorded])
                self._ledger.append([(key, None) for key, _ in unrecorded])
        except OSError as error:
            raise _folder_error(self.folder, self.setting_id, error) from None
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
            raise _folder_error(self.folder, self.setting_id, error) from None
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
        self._paths[key] = target
        attachments = extract(target, self._attachments_of(target))
        # Recorded only once its attachments are out: else `recover` finishes them.
        self._unsynced.append((key, uidl, target.name))
        return DeliveredMessage(str(target), _optional(attachments))

    async def sync(self) -> None:
        if self._unsynced:
            await asyncio.to_thread(self._sync)

    def _sync(self) -> None:
        try:
            fsync_dir(self.folder / "new")
            if self.owes_commands:  # before the ledger: see the module docstring
                self._owed.owe([(key, name) for key, _, name in self._unsynced])
            self._ledger.append([(key, uidl) for key, uidl, _ in self._unsynced])
        except OSError as error:
            raise DeliveryError(
                "cannot sync the delivery folder {folder} ({reason}): the messages stay on the"
                " server. Check the file system that holds it (free space, errors).",
                folder=str(self.folder),
                reason=_reason(error),
            ) from None
        self._unsynced.clear()

    async def owed_commands(self) -> list[OwedCommand]:
        try:
            return await asyncio.to_thread(self._owed_commands)
        except OSError as error:
            raise _record_error(self.folder, error) from None

    def _owed_commands(self) -> list[OwedCommand]:
        owed: list[OwedCommand] = []
        rescanned = False
        for key, name in list(self._owed.owed.items()):
            if key not in self._ledger.keys:
                # Stored but not recorded (a failed sync): `recover` records it, and then it is
                # owed. Not even stored: it was never delivered, and is not owed.
                if key not in self._stored:
                    self._owed.done(key)
                continue
            path = self._paths.get(key)
            if (path is None or not path.exists()) and not rescanned:
                # A reader moved or removed messages meanwhile.
                self._paths = {k: p for k, p in self._messages() if k.startswith(self._tag)}
                rescanned, path = True, self._paths.get(key)
            if path is None or not path.exists():
                owed.append(OwedCommand(key, name or key, None))
                continue
            attachments = self._attachments_of(path)
            found = str(attachments) if attachments.is_dir() else None
            owed.append(OwedCommand(key, name or key, DeliveredMessage(str(path), found)))
        return owed

    async def command_done(self, key: str) -> None:
        try:
            await asyncio.to_thread(self._owed.done, key)
        except OSError as error:
            raise _record_error(self.folder, error) from None


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


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _folder_error(folder: Path, setting_id: str, error: OSError) -> DeliveryError:
    return DeliveryError(
        "cannot use the delivery folder {folder}: {reason}. Make it a folder tokenpost may write,"
        " or choose another with 'tokenpost pop add {name} --deliver-to DIR'.",
        folder=str(folder),
        reason=_reason(error),
        name=setting_id.removeprefix("pop:"),
    )


def _record_error(folder: Path, error: OSError) -> DeliveryError:
    return DeliveryError(
        "cannot update the record of owed commands in {folder} ({reason}): a command may run"
        " again at the next receive. Check the file system that holds the folder (free space,"
        " errors).",
        folder=str(folder),
        reason=_reason(error),
    )


def _store_error(folder: Path, error: OSError) -> DeliveryError:
    return DeliveryError(
        "cannot store a message in {folder}: {reason}; it stays on the server. Free space on the"
        " file system that holds the folder, or make the folder writable.",
        folder=str(folder),
        reason=_reason(error),
    )


if TYPE_CHECKING:

    def _implements_ports(drop: MaildirDrop, delivery: MaildirDelivery) -> None:  # for mypy
        opener: MailDropOpener = open_maildir
        as_drop: MailDrop = drop
        as_delivery: MailDelivery = delivery
        del opener, as_drop, as_delivery
