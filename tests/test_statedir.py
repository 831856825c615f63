"""The state directory's plumbing shared by the journal and the audit's results."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from cutover import statedir
from cutover.errors import StateError


def test_a_lock_is_refused_at_once_and_names_its_holder(tmp_path):
    fd = statedir.take_lock(tmp_path, "lock", "first")
    try:
        with pytest.raises(StateError, match=rf"locked by pid {os.getpid()}: another run is here"):
            statedir.take_lock(tmp_path, "lock", "another run is here")
    finally:
        os.close(fd)
    os.close(statedir.take_lock(tmp_path, "lock", "free again"))


def test_a_database_is_private_and_a_transaction_all_or_nothing(tmp_path):
    db = statedir.connect(tmp_path / "x.sqlite3", "journal_mode=WAL")
    assert stat.S_IMODE((tmp_path / "x.sqlite3").stat().st_mode) == 0o600
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("CREATE TABLE t (v INTEGER)")
    with pytest.raises(RuntimeError):
        with statedir.transaction(db, tmp_path, "test") as txn:
            txn.execute("INSERT INTO t VALUES (1)")
            raise RuntimeError("half way")
    assert db.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0
    with pytest.raises(StateError, match=rf"state directory {tmp_path}: test write failed \(no such table: nope\)"):
        with statedir.transaction(db, tmp_path, "test") as txn:
            txn.execute("INSERT INTO nope VALUES (1)")
    assert not db.in_transaction
    db.close()


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StateError, match="file is a file, not a directory"):
        statedir.make_directory(tmp_path / "file" / "state")
    assert statedir.reason(sqlite3.OperationalError("disk I/O error")) == "disk I/O error"
