"""The portal's own files (var/, the SQLite database, raw reports) are readable by their owner only.

Raw reports and the database hold what a scan found and who did what: another account on the machine has no
business reading them. The process umask is left alone (collected static files, for one, may be served by
someone else); these helpers set the mode where the files are made, and tighten an older, looser one.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_directory(path: Path) -> Path:
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    tighten(path)
    return path


def private_file(path: Path) -> Path:
    """Create the file empty with FILE_MODE if it does not exist (an empty file is a valid SQLite database), or
    tighten its mode; SQLite gives its -wal and -shm files the database file's mode."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE))
    except FileExistsError:
        tighten(path)
    for companion in (Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        if companion.exists():
            tighten(companion)
    return path


def tighten(path: Path) -> None:
    """Drop group and other permissions from a path this process owns (another owner's is left as it is)."""
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid == os.geteuid() and mode & 0o077:
        os.chmod(path, mode & 0o700)
