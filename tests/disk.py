"""A real small disk for tests of a full disk: a tmpfs of a few MiB, filled on demand.

Mounting needs root (CI runs as root); elsewhere the tests that need it are
skipped, and say why. Filling writes a filler file until the kernel answers
ENOSPC, so what the code under test meets is the real error, from the real
file system; removing the filler gives the space back.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

FILLER = ".filler"


def can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@contextlib.contextmanager
def small_tmpfs(path: Path, size_mib: int) -> Iterator[Path]:
    """A tmpfs of ``size_mib`` MiB mounted at ``path`` for the duration."""
    if not can_mount():
        pytest.skip("mounting a small tmpfs (a real full disk) needs root; CI runs as root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0700", "tmpfs", str(path)],
        check=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> int:
    """Write a filler file until the disk is full; returns the bytes it took."""
    written = 0
    chunk = b"\0" * 65536
    fd = os.open(disk / FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                written += os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        # The last bytes a page at a time, so that not even a small write fits.
        while True:
            try:
                written += os.write(fd, b"\0" * 512)
            except OSError:
                break
    finally:
        os.close(fd)
    return written


def free(disk: Path) -> None:
    """Give the filler's space back."""
    (disk / FILLER).unlink(missing_ok=True)
