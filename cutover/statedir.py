"""The state directory's shared plumbing: the directory itself, its locks, its SQLite files.

The journal (``cutover.journal``) and an audit's results (``cutover.audit.store``) live
side by side in one state directory, each in its own SQLite file under its own lock;
both need the same care: a private directory, a file lock that names its holder, a
database file created private before SQLite opens it, transactions taken up front
(``BEGIN IMMEDIATE``) so that a writer never fails halfway, and errors that say which
directory and why in words, not as a traceback.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from cutover.errors import StateError


def make_directory(directory: Path) -> None:
    """Create the state directory (private); a file in the way is named as such, not "File exists"."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (directory, *directory.parents) if p.exists() and not p.is_dir()), directory)
        what = "" if blocker == directory else f"{blocker} "
        raise StateError(f"state directory {directory}: {what}is a file, not a directory; "
                         "move the file away or give --state another directory") from None
    except OSError as exc:
        raise StateError(f"state directory {directory}: cannot be created ({reason(exc)})") from None


def take_lock(directory: Path, name: str, why: str) -> int:
    """An exclusive lock on ``directory/name`` (its file descriptor), holding our pid so that
    the next one refused can say who holds it; refused at once with ``why``, never waited for."""
    path = directory / name
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as exc:
        raise StateError(f"state directory {directory}: cannot create the lock ({reason(exc)})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise StateError(f"state directory {directory} is locked by {holder}: {why}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
    return fd


def connect(path: Path, *pragmas: str) -> sqlite3.Connection:
    """A SQLite file created private (0600) before SQLite opens it, in autocommit mode
    (transactions are ``transaction``'s), with ``pragmas`` such as ``journal_mode=WAL``."""
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    for pragma in pragmas:
        db.execute(f"PRAGMA {pragma}")
    return db


@contextmanager
def transaction(db: sqlite3.Connection, directory: Path, what: str) -> Iterator[sqlite3.Connection]:
    """All or nothing, the write lock taken up front; a failure names the directory and ``what``."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StateError(f"state directory {directory}: {what} write failed ({reason(exc)})") from None


def reason(exc: BaseException) -> str:
    """An error in words: the system's for an OSError, else the message."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
