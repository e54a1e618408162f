"""Flow owners on flock(2): an owner is alive while its process runs, gone once it exits —
however it exits, SIGKILL included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tokenpost.adapters.flow_owners import FileFlowOwners

CLAIMER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tokenpost.adapters.flow_owners import FileFlowOwners

    host, owner = FileFlowOwners(Path(sys.argv[1]), host="h").claim()
    print(owner, flush=True)
    time.sleep(60)
    """
)


def test_an_owner_is_alive_while_it_runs_and_gone_when_it_stops(tmp_path: Path) -> None:
    mine = FileFlowOwners(tmp_path, host="h")
    claimed = mine.claim()
    assert claimed is not None
    host, owner = claimed
    assert host == "h"
    assert mine.claim() == claimed  # one owner per process
    other = FileFlowOwners(tmp_path, host="h")  # another reader, e.g. `token status`
    assert not other.is_gone("h", owner)
    assert not mine.is_gone("h", owner)
    mine.close()
    assert other.is_gone("h", owner)
    assert list(tmp_path.iterdir()) == []


def test_an_owner_killed_with_sigkill_is_gone(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        owner = process.stdout.readline().strip()
        checker = FileFlowOwners(tmp_path, host="h")
        assert not checker.is_gone("h", owner)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
    assert checker.is_gone("h", owner)
    assert not (tmp_path / f"flow-{owner}.lock").exists()  # the one who found it gone tidied up
    assert checker.is_gone("h", owner)


def test_owners_that_cannot_be_checked_here_are_never_gone(tmp_path: Path) -> None:
    checker = FileFlowOwners(tmp_path, host="h")
    assert not checker.is_gone("another-host", "0" * 32)  # judged by the flow's expiry
    for bad in ("../../etc/passwd", "0" * 31, "G" * 32, ""):
        assert not checker.is_gone("h", bad)
    assert checker.is_gone("h", "0" * 32)  # no file: nobody owns it


def test_the_default_host_is_this_machine(tmp_path: Path) -> None:
    claimed = FileFlowOwners(tmp_path).claim()
    assert claimed is not None
    assert claimed[0] == os.uname().nodename


def test_no_ownership_file_means_no_owner(tmp_path: Path) -> None:
    missing = FileFlowOwners(tmp_path / "no-such-dir", host="h")
    assert missing.claim() is None
    missing.close()
