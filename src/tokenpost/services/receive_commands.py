"""A POP setting's per-message command (printing each fax, say): owed, then run at least once.

Theory of operation. The drop records a message's command as owed in the same durable step that
records the message as delivered, before the server copy may be deleted (`ports.MailDrop.sync`,
`recover`), so a kill at any moment leaves every stored message with its command owed or done.
After each session, whether it worked or not, `run_owed` runs every owed command in the order
they became owed: those an earlier run left (it was killed, or the command could not start) come
first, then those of the messages just fetched. The POP server is never kept waiting on a command.

A command that ran to an end, whatever its exit status, or that was killed at its timeout, is
done, and its outcome is logged (INFO when it exited 0, else WARNING) with the tail of its
output. A command that cannot be started (not found, not executable, not a valid command line)
stays owed, with every command after it, and the warning says what to fix; the next run tries
again. A kill while a command runs leaves it owed, so it runs again on the next run: commands run
at least once, not exactly once.

A message the administrator removed from the folder before its command ran has nothing to run on:
its command is dropped with a warning naming the file. When the setting no longer has a command,
what it still owed is dropped with one line.

Log lines name the setting and the message file, never the command line (it may hold a password).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from tokenpost.errors import OperationError
from tokenpost.ports import CommandResult, CommandRunner, DeliveredMessage, MailDrop
from tokenpost.settings.model import PopSetting
from tokenpost.settings.syntax import command_words

log = logging.getLogger("tokenpost.receive.command")

OUTPUT_TAIL_CHARS: Final = 300


@dataclass
class CommandTally:
    """What one pass over the owed commands did."""

    ran: int = 0  # ran to an end
    failed: int = 0  # ran and failed (exit status, timeout), or could not be started
    owed: int = 0  # still owed after the pass: the command could not be started


async def run_owed(
    setting: PopSetting,
    drop: MailDrop,
    runner: CommandRunner,
    tally: CommandTally,
    *,
    timeout: float,  # noqa: ASYNC109 - passed on to the runner, per command
) -> None:
    """Run the commands `drop` owes for `setting`, oldest first; see the module docstring.

    Raises:
        DeliveryError: the drop cannot read or write its record of owed commands.
    """
    owed = await drop.owed_commands()
    if not owed:
        return
    if not setting.command:
        for item in owed:
            await drop.command_done(item.key)
        log.info(
            "%s: %d owed commands dropped: the setting has no command any more",
            setting.setting_id,
            len(owed),
        )
        return
    for index, item in enumerate(owed):
        if item.message is None:
            log.warning(
                "%s: the message %s was removed from the delivery folder before its command"
                " ran; that command is dropped",
                setting.setting_id,
                item.name,
            )
            await drop.command_done(item.key)
            continue
        try:
            result = await _run_one(setting, item.message, runner, timeout)
        except OperationError as error:
            tally.failed += 1
            tally.owed = len(owed) - index
            log.warning(
                "%s: the command for %s could not be started: %s. It stays owed, as do the"
                " others (%d in all), and runs at the next receive; correct the command with"
                " 'tokenpost pop add %s --command CMD'",
                setting.setting_id,
                item.message.path,
                error,
                tally.owed,
                setting.name,
            )
            return
        await drop.command_done(item.key)
        tally.ran += 1
        if result.returncode != 0:
            tally.failed += 1
        _log_outcome(setting.setting_id, item.message.path, result, timeout)


async def _run_one(
    setting: PopSetting,
    message: DeliveredMessage,
    runner: CommandRunner,
    timeout: float,  # noqa: ASYNC109
) -> CommandResult:
    """Raises OperationError: the command cannot be started."""
    try:
        words = command_words(setting.command or "")
    except ValueError:
        raise OperationError(
            "the command is not a valid command line (a quote is not closed or a backslash ends it)"
        ) from None
    env = {"TOKENPOST_SETTING": setting.setting_id, "TOKENPOST_MESSAGE": message.path}
    if message.attachments:
        env["TOKENPOST_ATTACHMENTS"] = message.attachments
    return await runner.run([*words, message.path], timeout=timeout, env=env)


def _log_outcome(setting_id: str, path: str, result: CommandResult, timeout: float) -> None:
    tail = output_tail(result.output)
    if result.returncode is None:
        log.warning(
            "%s: the command for %s was killed at its timeout of %g s; end of its output: %r",
            setting_id,
            path,
            timeout,
            tail,
        )
        return
    if result.returncode == 0:
        log.info(
            "%s: the command for %s ended with exit status %d; end of its output: %r",
            setting_id,
            path,
            result.returncode,
            tail,
        )
        return
    log.warning(
        "%s: the command for %s ended with exit status %d; end of its output: %r",
        setting_id,
        path,
        result.returncode,
        tail,
    )


def output_tail(output: str) -> str:
    """The last `OUTPUT_TAIL_CHARS` characters of a command's output, for one log line (shown
    with %r, so line breaks and control characters stay escaped)."""
    return output.strip()[-OUTPUT_TAIL_CHARS:]
