"""Disk full and read-only: an atomic write that fails at any of its moments (ENOSPC, EROFS
injected into the temporary file's creation, a write, the fsync, the rename) leaves the previous
file intact and no temporary file, and raises one OSError line naming the target and the cause.
The same faults in the middle of a training run: tests/test_faults_kill.py."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from antlers.io import files
from antlers.io.files import TEMPORARY_GLOB, atomic_write, remove_temporaries
from faults import Injector, disk_full

MOMENTS = ("open", "write", "fsync", "replace")  # the events of one write, up to the rename


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EIO])
@pytest.mark.parametrize("moment", range(len(MOMENTS)))
def test_a_failed_write_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moment: int, code: int
) -> None:
    target = tmp_path / "state" / "last.pt"
    atomic_write(target, b"the good checkpoint")
    injector = Injector(at=moment, fault=disk_full(code))
    injector.install(monkeypatch.setattr)
    with pytest.raises(OSError, match=os.strerror(code)) as raised:
        atomic_write(target, b"a newer checkpoint that does not fit on the disk")
    assert [kind for kind, _ in injector.events] == list(MOMENTS[: moment + 1])
    assert raised.value.errno == code
    assert str(raised.value) == f"[Errno {code}] {os.strerror(code)}: '{target}'"  # one line
    assert target.read_bytes() == b"the good checkpoint"
    assert os.listdir(target.parent) == ["last.pt"]  # no temporary file left


def test_a_fault_after_the_rename_leaves_the_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder's fsync failing (EIO) is reported, and the new file is complete."""
    target = tmp_path / "metrics.csv"
    atomic_write(target, "old")
    Injector(at=len(MOMENTS), fault=disk_full(errno.EIO)).install(monkeypatch.setattr)
    with pytest.raises(OSError, match="Input/output error"):
        atomic_write(target, "new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["metrics.csv"]


def test_a_write_fsyncs_the_file_renames_then_fsyncs_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done: list[str] = []

    class Recording:  # the os module, recording what is synced and renamed, in order
        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        def fsync(self, fd: int) -> None:
            done.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
            os.fsync(fd)

        def replace(self, source: str, target: str) -> None:
            done.append("rename")
            os.replace(source, target)

    monkeypatch.setattr(files, "os", Recording())
    atomic_write(tmp_path / "config.json", "{}")
    assert done == ["fsync file", "rename", "fsync folder"]


def test_temporary_files_of_killed_writes_are_removed(tmp_path: Path) -> None:
    """What a kill mid-write leaves (``.<name>.<random>.tmp``) goes; every other file stays."""
    (tmp_path / "state").mkdir()
    leftovers = [tmp_path / "state" / ".last.pt.k2j4.tmp", tmp_path / ".config.json.x9.tmp"]
    kept = [tmp_path / "state" / "last.pt", tmp_path / "notes.tmp", tmp_path / ".hidden"]
    for path in leftovers + kept:
        path.write_bytes(b"x")
    assert sorted(remove_temporaries(tmp_path)) == sorted(leftovers)
    assert all(path.exists() for path in kept)
    assert not list(tmp_path.rglob(TEMPORARY_GLOB))
