"""The journal's own promises: private files, one writer, states that survive reopening."""

from __future__ import annotations

import stat

import pytest

from cutover.errors import StateError
from cutover.journal import Journal
from cutover.records import Change, RecordSet

WWW_OLD = RecordSet.build("www.example.com.", "A", 3600, ["198.51.100.10"])
WWW_NEW = RecordSet.build("www.example.com.", "A", 300, ["203.0.113.10"])
NEW_AAAA = RecordSet.build("www.example.com.", "AAAA", 300, ["2001:db8::10"])


def test_files_are_private(tmp_path):
    journal = Journal(tmp_path / "state")
    journal.lock()
    journal.close()
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    for path in (tmp_path / "state").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_run_lifecycle_survives_reopening(tmp_path):
    journal = Journal(tmp_path)
    run_id = journal.begin("apply", "example.com.", "plan.yaml", "abc", [Change(WWW_OLD, WWW_NEW), Change(None, NEW_AAAA)], now=100.0)
    journal.mark(run_id, "sending")
    journal.close()

    reopened = Journal(tmp_path)
    run = reopened.run(run_id)
    assert run.status == "sending" and [c.status for c in run.changes] == ["pending", "pending"]
    reopened.mark(run_id, "applied", changed=105.0)
    run = reopened.run(run_id)
    assert run.status == "applied" and run.changed == 105.0
    assert run.snapshot() == {WWW_OLD.key: WWW_OLD, NEW_AAAA.key: None}
    assert run.as_dict()["changed"] == "1970-01-01T00:01:45Z"


def test_partial_marks_exactly_what_landed(tmp_path):
    journal = Journal(tmp_path)
    run_id = journal.begin("apply", "example.com.", "plan.yaml", "abc", [Change(WWW_OLD, WWW_NEW), Change(None, NEW_AAAA)])
    journal.mark_changes(run_id, [WWW_NEW.key], "landed")
    journal.mark(run_id, "partial")
    run = journal.run(run_id)
    assert [c.status for c in run.changes] == ["landed", "failed"]  # partial: the rest did not land
    assert run.landed_changes == (Change(WWW_OLD, WWW_NEW),)


def test_rounds_are_kept_per_zone(tmp_path):
    journal = Journal(tmp_path)
    journal.add_round("a.example.", 1, 10.0, {"round": 1})
    journal.add_round("b.example.", 1, 11.0, {"round": 1, "zone": "b"})
    journal.add_round("a.example.", 2, 12.0, {"round": 2})
    assert journal.round_count("a.example.") == 2
    assert journal.last_round("a.example.") == {"round": 2}
    assert [d["round"] for d in journal.rounds("a.example.", since=11.0)] == [2]


def test_one_writer_at_a_time(tmp_path):
    first, second = Journal(tmp_path), Journal(tmp_path)
    first.lock()
    with pytest.raises(StateError, match="locked by pid"):
        second.lock()
    first.close()
    second.lock()  # released with the first
    second.close()


def test_unusable_directory_is_a_state_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateError, match=r"file: is a file, not a directory; move the file away or give --state"):
        Journal(tmp_path / "file")
    with pytest.raises(StateError, match=r"sub: .*file is a file, not a directory"):
        Journal(tmp_path / "file" / "sub")
