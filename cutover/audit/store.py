"""An audit's results in the state directory, so that a long run can be resumed.

An audit of 100,000 domains takes a while and will sometimes be interrupted (a laptop
closed, a deploy, Ctrl-C). Each domain's result is written as soon as it is known, in
``audit.sqlite3`` beside the journal, keyed by the run's parameters (``--old``,
``--new``, ``--names``): running the same audit again asks only the domains without a
result. Another audit (other addresses) keeps its own results in the same file.
``--fresh`` forgets a run's results, ``--recheck STATUS`` those with that status (a
daily re-run that only follows the customers who have not moved yet).

One audit runs per state directory at a time (a lock, as for ``apply``), because two
writers would each believe the other's domains still to be done.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from cutover.errors import StateError

DB_NAME = "audit.sqlite3"
LOCK_NAME = "audit.lock"
SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_runs (
    run TEXT PRIMARY KEY,
    params TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_results (
    run TEXT NOT NULL,
    domain TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT NOT NULL,
    audited REAL NOT NULL,
    PRIMARY KEY (run, domain)
);
"""

#: A stored result: (domain, status, the result's JSON).
Row = tuple[str, str, str]


def run_key(params: Mapping[str, Any]) -> str:
    """The run's identity: what decides a domain's status (not how fast it was asked)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


class AuditStore:
    """The results of one audit run (``params``) in ``directory``, under its lock."""

    def __init__(self, directory: Path, params: Mapping[str, Any]) -> None:
        self.directory = Path(directory)
        self.run = run_key(params)
        _make_directory(self.directory)
        self._lock_fd = self._lock()
        try:
            db = self.directory / DB_NAME
            if not db.exists():
                os.close(os.open(db, os.O_CREAT | os.O_WRONLY, 0o600))
            self.db = sqlite3.connect(db, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")  # a commit per batch stays cheap
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self.db.execute("INSERT OR IGNORE INTO audit_runs (run, params, created) VALUES (?, ?, ?)",
                            (self.run, json.dumps(params, sort_keys=True), time.time()))
        except (OSError, sqlite3.Error) as exc:
            os.close(self._lock_fd)
            raise StateError(f"state directory {self.directory}: cannot use {DB_NAME} ({_reason(exc)})") from None

    def _lock(self) -> int:
        path = self.directory / LOCK_NAME
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        except OSError as exc:
            raise StateError(f"state directory {self.directory}: cannot create the lock ({_reason(exc)})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StateError(f"state directory {self.directory} is locked by {holder}: another `cutover audit` "
                             "is running there; wait for it, or give --state another directory") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        return fd

    def close(self) -> None:
        self.db.close()
        os.close(self._lock_fd)

    def __enter__(self) -> "AuditStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def done(self) -> dict[str, str]:
        """Every domain with a result in this run, and its status."""
        rows = self.db.execute("SELECT domain, status FROM audit_results WHERE run = ?", (self.run,))
        return dict(rows.fetchall())

    def forget(self, statuses: Iterable[str] | None = None) -> int:
        """Drop this run's results (``--fresh``), or those with one of ``statuses``
        (``--recheck``), so that they are asked again. Returns how many."""
        with self._transaction():
            if statuses is None:
                cursor = self.db.execute("DELETE FROM audit_results WHERE run = ?", (self.run,))
            else:
                wanted = sorted(set(statuses))
                marks = ",".join("?" * len(wanted))
                cursor = self.db.execute(f"DELETE FROM audit_results WHERE run = ? AND status IN ({marks})",
                                         (self.run, *wanted))
        return cursor.rowcount

    def save(self, rows: Sequence[Row], at: float | None = None) -> None:
        """Results, in one transaction: after a crash each is either stored whole or not."""
        if not rows:
            return
        stamp = time.time() if at is None else at
        with self._transaction():
            self.db.executemany("INSERT OR REPLACE INTO audit_results (run, domain, status, result, audited) "
                                "VALUES (?, ?, ?, ?, ?)", [(self.run, d, s, r, stamp) for d, s, r in rows])

    def results(self) -> dict[str, dict[str, Any]]:
        """This run's results by domain, with the time each was found (``audited``)."""
        rows = self.db.execute("SELECT domain, result, audited FROM audit_results WHERE run = ?", (self.run,))
        out = {}
        for domain, text, audited in rows:
            doc = json.loads(text)
            doc["audited"] = audited
            out[domain] = doc
        return out

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")


def _make_directory(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise StateError(f"state directory {directory}: a file is in the way; give --state another directory") from None
    except OSError as exc:
        raise StateError(f"state directory {directory}: cannot be created ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
