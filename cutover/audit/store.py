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

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, ContextManager, Iterable, Mapping, Sequence

from cutover import statedir
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
        statedir.make_directory(self.directory)
        self._lock_fd = statedir.take_lock(self.directory, LOCK_NAME, "another `cutover audit` is running there; "
                                                                      "wait for it, or give --state another directory")
        try:
            self.db = statedir.connect(self.directory / DB_NAME, "journal_mode=WAL",  # a commit per batch stays cheap
                                       "synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self.db.execute("INSERT OR IGNORE INTO audit_runs (run, params, created) VALUES (?, ?, ?)",
                            (self.run, json.dumps(params, sort_keys=True), time.time()))
        except (OSError, sqlite3.Error) as exc:
            os.close(self._lock_fd)
            raise StateError(f"state directory {self.directory}: cannot use {DB_NAME} ({statedir.reason(exc)})") from None

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

    def _transaction(self) -> ContextManager[sqlite3.Connection]:
        return statedir.transaction(self.db, self.directory, "audit results")
