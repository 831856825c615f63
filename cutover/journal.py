"""The journal: every prepare, apply and rollback, and every watch round, in SQLite.

The journal is written *before* the provider is called and updated after, each step
in its own transaction, so that a crash or ``kill -9`` at any point leaves a record
that says exactly how far a run got. A run left in ``sending`` is the one case where
the outcome is unknown; ``reconcile`` settles it by reading the live zone.

Run states::

    pending -> sending -> applied -> insync -> verified | unverified
                    \\-> failed | partial            (pending -> abandoned on restart)
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager, Sequence

from cutover import statedir
from cutover.errors import StateError
from cutover.records import Change, RecordKey, RecordSet
from cutover.times import iso

DB_NAME = "journal.sqlite3"
LOCK_NAME = "lock"
WATCH_LOCK_NAME = "watch.lock"

#: Runs whose changes are (believed to be) live at the provider.
LANDED = ("applied", "insync", "verified", "unverified", "partial")
#: Runs that may still be in flight from a process that died.
UNSETTLED = ("pending", "sending")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,          -- prepare | apply | rollback
    zone        TEXT NOT NULL,
    plan        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    status      TEXT NOT NULL,
    started     REAL NOT NULL,
    changed     REAL,                   -- when the provider accepted the change
    finished    REAL,
    token       TEXT,
    error       TEXT,
    undoes      INTEGER REFERENCES runs(id),
    forced      TEXT
);
CREATE TABLE IF NOT EXISTS run_changes (
    run_id  INTEGER NOT NULL REFERENCES runs(id),
    seq     INTEGER NOT NULL,
    name    TEXT NOT NULL,
    type    TEXT NOT NULL,
    before  TEXT,                       -- JSON record set: the pre-change snapshot
    after   TEXT,
    status  TEXT NOT NULL,              -- pending | landed | failed | unknown
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS verifications (
    run_id  INTEGER NOT NULL REFERENCES runs(id),
    server  TEXT NOT NULL,
    state   TEXT NOT NULL,              -- new | stale | unreachable | ...
    detail  TEXT NOT NULL,
    time    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    id       INTEGER PRIMARY KEY,
    zone     TEXT NOT NULL,
    number   INTEGER NOT NULL,
    time     REAL NOT NULL,
    document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS probe_results (  -- each probe measurement's answers, once (rounds hold their counts)
    zone     TEXT NOT NULL,
    service  TEXT NOT NULL,
    name     TEXT NOT NULL,
    type     TEXT NOT NULL,
    measured TEXT NOT NULL,             -- when its results arrived (ISO, milliseconds)
    round    INTEGER NOT NULL,          -- the first round they joined
    answers  TEXT NOT NULL,             -- JSON list of the answers, as a round shows them
    PRIMARY KEY (zone, service, name, type, measured)
);
CREATE INDEX IF NOT EXISTS runs_zone ON runs(zone, id);
CREATE INDEX IF NOT EXISTS rounds_zone ON rounds(zone, id);
"""


def _rs_json(rs: RecordSet | None) -> str | None:
    return None if rs is None else json.dumps({"name": rs.name, "type": rs.type, "ttl": rs.ttl, "values": list(rs.values)})


def _rs_load(text: str | None) -> RecordSet | None:
    if text is None:
        return None
    d = json.loads(text)
    return RecordSet(d["name"], d["type"], int(d["ttl"]), tuple(d["values"]))


@dataclass(frozen=True)
class JournalChange:
    seq: int
    change: Change
    status: str


@dataclass(frozen=True)
class Run:
    """One journalled prepare, apply or rollback."""

    id: int
    kind: str
    zone: str
    plan: str
    digest: str
    status: str
    started: float
    changed: float | None
    finished: float | None
    token: str | None
    error: str | None
    undoes: int | None
    forced: str | None
    changes: tuple[JournalChange, ...]

    @property
    def landed_changes(self) -> tuple[Change, ...]:
        return tuple(c.change for c in self.changes if c.status == "landed")

    def snapshot(self) -> dict[RecordKey, RecordSet | None]:
        """The pre-change state of every record set this run changed and that landed."""
        return {c.change.key: c.change.before for c in self.changes if c.status == "landed"}

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "zone": self.zone,
            "plan": self.plan,
            "status": self.status,
            "started": iso(self.started),
            "changed": iso(self.changed),
            "finished": iso(self.finished),
            "error": self.error,
            "undoes": self.undoes,
            "forced": self.forced,
            "changes": [dict(c.change.as_dict(), status=c.status) for c in self.changes],
        }


class Journal:
    """The state directory's SQLite journal. One per state directory, shared by its zones."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock_fd: int | None = None
        self._watch_fd: int | None = None
        statedir.make_directory(self.directory)
        try:
            self.db = statedir.connect(self.directory / DB_NAME, "journal_mode=DELETE", "synchronous=FULL")
            self.db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"state directory {self.directory}: cannot use the journal ({statedir.reason(exc)})") from None

    def close(self) -> None:
        self.unlock()
        self.db.close()

    # ------------------------------------------------------------------ locking

    def lock(self) -> None:
        """Take the state's exclusive lock; a second apply on the same state is refused."""
        if self._lock_fd is None:
            self._lock_fd = self._take(LOCK_NAME, "another cutover run is changing these zones; wait for it to finish")

    def lock_watch(self) -> None:
        """One ``watch`` per state: two would interleave their round numbers and notify
        twice. A separate lock, so that apply and rollback stay possible while watching."""
        if self._watch_fd is None:
            self._watch_fd = self._take(WATCH_LOCK_NAME, "another `cutover watch` is watching these zones; "
                                                         "its rounds are in `cutover status`")

    def _take(self, name: str, why: str) -> int:
        return statedir.take_lock(self.directory, name, why)

    def unlock(self) -> None:
        for fd in (self._lock_fd, self._watch_fd):
            if fd is not None:
                os.close(fd)
        self._lock_fd = self._watch_fd = None

    def _txn(self) -> ContextManager[sqlite3.Connection]:
        return statedir.transaction(self.db, self.directory, "journal")

    # ------------------------------------------------------------------ runs

    def begin(self, kind: str, zone: str, plan: str, digest: str, changes: Sequence[Change],
              *, undoes: int | None = None, forced: str | None = None, now: float | None = None) -> int:
        """Journal a run and its changes as ``pending``, before anything is sent."""
        with self._txn() as db:
            cur = db.execute(
                "INSERT INTO runs (kind, zone, plan, digest, status, started, undoes, forced)"
                " VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
                (kind, zone, plan, digest, now or time.time(), undoes, forced),
            )
            run_id = int(cur.lastrowid or 0)
            db.executemany(
                "INSERT INTO run_changes (run_id, seq, name, type, before, after, status)"
                " VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                [(run_id, i, c.name, c.type, _rs_json(c.before), _rs_json(c.after)) for i, c in enumerate(changes)],
            )
        return run_id

    def mark(self, run_id: int, status: str, **fields: Any) -> None:
        """Move a run to ``status``, setting any of changed/finished/token/error."""
        allowed = {"changed", "finished", "token", "error"}
        if set(fields) - allowed:
            raise ValueError(f"unknown run fields {set(fields) - allowed}")
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._txn() as db:
            db.execute(
                f"UPDATE runs SET status = ?{', ' + cols if cols else ''} WHERE id = ?",
                (status, *fields.values(), run_id),
            )
            if status == "applied":  # the provider accepted the whole run: what was pending landed
                db.execute("UPDATE run_changes SET status = 'landed' WHERE run_id = ? AND status = 'pending'", (run_id,))
            elif status in ("failed", "abandoned", "partial"):  # what had not landed by now did not
                db.execute("UPDATE run_changes SET status = 'failed' WHERE run_id = ? AND status = 'pending'", (run_id,))

    def mark_changes(self, run_id: int, keys: Sequence[RecordKey], status: str) -> None:
        with self._txn() as db:
            db.executemany(
                "UPDATE run_changes SET status = ? WHERE run_id = ? AND name = ? AND type = ?",
                [(status, run_id, name, rtype) for name, rtype in keys],
            )

    def run(self, run_id: int) -> Run:
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StateError(f"journal has no run {run_id}")
        return self._run(row)

    def runs(self, zone: str, kinds: Sequence[str] = ("prepare", "apply", "rollback")) -> list[Run]:
        marks = ",".join("?" * len(kinds))
        rows = self.db.execute(
            f"SELECT * FROM runs WHERE zone = ? AND kind IN ({marks}) ORDER BY id", (zone, *kinds)
        ).fetchall()
        return [self._run(r) for r in rows]

    def zone_plans(self, kind: str = "apply") -> list[tuple[str, str]]:
        """Every (zone, plan file) with a run of ``kind``, in the order each pair first ran:
        how a fleet finds the zones it changed without asking the provider."""
        rows = self.db.execute("SELECT zone, plan FROM runs WHERE kind = ? GROUP BY zone, plan ORDER BY MIN(id)",
                               (kind,)).fetchall()
        return [(str(zone), str(plan)) for zone, plan in rows]

    def last(self, zone: str, kinds: Sequence[str], statuses: Sequence[str]) -> Run | None:
        for run in reversed(self.runs(zone, kinds)):
            if run.status in statuses:
                return run
        return None

    def _run(self, row: tuple) -> Run:
        cols = [d[0] for d in self.db.execute("SELECT * FROM runs LIMIT 0").description]
        data = dict(zip(cols, row))
        changes = tuple(
            JournalChange(seq, Change(_rs_load(before), _rs_load(after)), status)
            for seq, before, after, status in self.db.execute(
                "SELECT seq, before, after, status FROM run_changes WHERE run_id = ? ORDER BY seq", (data["id"],)
            )
        )
        return Run(changes=changes, **data)

    # ------------------------------------------------------------------ verification and rounds

    def add_verification(self, run_id: int, server: str, state: str, detail: str, now: float | None = None) -> None:
        with self._txn() as db:
            db.execute(
                "INSERT INTO verifications (run_id, server, state, detail, time) VALUES (?, ?, ?, ?, ?)",
                (run_id, server, state, detail, now or time.time()),
            )

    def verifications(self, run_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT server, state, detail, time FROM verifications WHERE run_id = ? ORDER BY rowid", (run_id,)
        ).fetchall()
        return [{"server": s, "state": st, "detail": d, "time": iso(t)} for s, st, d, t in rows]

    def verified_at(self, run_id: int) -> float | None:
        """When the run's verification last asked the servers (the full-precision time)."""
        row = self.db.execute("SELECT MAX(time) FROM verifications WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def add_round(self, zone: str, number: int, when: float, document: dict[str, Any]) -> None:
        with self._txn() as db:
            db.execute(
                "INSERT INTO rounds (zone, number, time, document) VALUES (?, ?, ?, ?)",
                (zone, number, when, json.dumps(document, sort_keys=True)),
            )

    def rounds(self, zone: str, since: float | None = None) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT document FROM rounds WHERE zone = ? AND time >= ? ORDER BY id", (zone, since or 0.0)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def last_round(self, zone: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT document FROM rounds WHERE zone = ? ORDER BY id DESC LIMIT 1", (zone,)).fetchone()
        return json.loads(row[0]) if row else None

    def add_probe_results(self, zone: str, number: int, groups: Sequence[tuple[str, str, str, str, list[Any]]]) -> None:
        """Probe answers, one row per measurement of one record ((service, name, type,
        measured, answers)); a measurement already stored by an earlier round is kept as it is."""
        if not groups:
            return
        with self._txn() as db:
            db.executemany(
                "INSERT OR IGNORE INTO probe_results (zone, service, name, type, measured, round, answers) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(zone, service, name, rtype, measured, number, json.dumps(answers, sort_keys=True))
                 for service, name, rtype, measured, answers in groups],
            )

    def probe_results(self, zone: str, until: str) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
        """The latest measurement of each (service, name, type) that had arrived by ``until``
        (ISO time, as rounds are stamped): what a round at that time showed."""
        rows = self.db.execute(
            "SELECT service, name, type, answers FROM probe_results p WHERE zone = ? AND measured <= ? AND measured = "
            "(SELECT MAX(measured) FROM probe_results q WHERE q.zone = p.zone AND q.service = p.service "
            "AND q.name = p.name AND q.type = p.type AND q.measured <= ?)", (zone, until, until)
        ).fetchall()
        return {(service, name, rtype): json.loads(answers) for service, name, rtype, answers in rows}

    def round_count(self, zone: str) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM rounds WHERE zone = ?", (zone,)).fetchone()[0])
