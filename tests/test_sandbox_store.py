"""``cutover.sandbox.store``: zone files written atomically, shared across processes,
changed only when every ``before`` still holds."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import dns.zone
import pytest

from cutover.records import Change, RecordSet
from cutover.sandbox import ChangeRejected, SandboxError, ZoneMissing, ZoneStore
from tests.test_sandbox import ZONE, make_store, rs

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def store(tmp_path: Path) -> ZoneStore:
    return make_store(tmp_path)


class TestZoneStore:
    def test_new_zone_has_soa_ns_and_records(self, store: ZoneStore) -> None:
        assert store.zones() == [ZONE]
        types = {(r.name, r.type) for r in store.records(ZONE)}
        assert {(ZONE, "SOA"), (ZONE, "NS"), ("www.sbx.test.", "A")} <= types
        assert store.serial(ZONE) == 1
        # the file is a plain zone file that any tool can read
        parsed = dns.zone.from_file(str(store.path_of(ZONE)), origin=ZONE, relativize=False)
        assert parsed.find_rdataset("www.sbx.test.", "A")[0].to_text() == "192.0.2.10"

    def test_create_refuses_to_overwrite_unless_asked(self, store: ZoneStore) -> None:
        with pytest.raises(SandboxError, match="already exists"):
            store.create_zone(ZONE)
        store.create_zone(ZONE, [rs("only", "A", 60, "192.0.2.1")], replace=True)
        assert ("www.sbx.test.", "A") not in {r.key for r in store.records(ZONE)}

    def test_each_change_bumps_the_serial_once(self, store: ZoneStore) -> None:
        www = rs("www", "A", 1, "192.0.2.10")
        assert store.apply(ZONE, [Change(www, rs("www", "A", 60, "203.0.113.10"))]) == 2
        assert store.put(ZONE, rs("new", "TXT", 60, '"x"'), rs("new2", "TXT", 60, '"y"')) == 3
        assert store.remove(ZONE, ("new.sbx.test.", "TXT")) == 4
        assert store.serial(ZONE) == 4

    def test_write_replaces_the_file_atomically(self, store: ZoneStore) -> None:
        path = store.path_of(ZONE)
        inode = path.stat().st_ino
        store.put(ZONE, rs("www", "A", 60, "203.0.113.10"))
        assert path.stat().st_ino != inode  # a new file renamed into place, not rewritten
        assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []

    def test_failed_write_leaves_old_file_and_no_debris(self, store: ZoneStore, monkeypatch) -> None:
        path = store.path_of(ZONE)
        before = path.read_bytes()

        def half_write(self, f, **kwargs):
            f.write("$ORIGIN sbx.test.\n@ 300 IN SOA")
            raise OSError("disk full")

        monkeypatch.setattr(dns.zone.Zone, "to_file", half_write)
        with pytest.raises(OSError, match="disk full"):
            store.put(ZONE, rs("www", "A", 60, "203.0.113.10"))
        monkeypatch.undo()
        assert path.read_bytes() == before
        assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
        assert store.serial(ZONE) == 1

    def test_other_store_sees_changes_when_the_file_changes(self, store: ZoneStore) -> None:
        other = ZoneStore(store.directory)
        assert other.serial(ZONE) == 1
        store.put(ZONE, rs("www", "A", 60, "203.0.113.10"))
        assert other.serial(ZONE) == 2
        assert rs("www", "A", 60, "203.0.113.10") in other.records(ZONE)

    def test_hand_edited_file_is_reread(self, store: ZoneStore) -> None:
        store.records(ZONE)  # cached
        path = store.path_of(ZONE)
        text = path.read_text().replace("192.0.2.25", "192.0.2.99")
        path.write_text(text)  # same inode, new mtime/size
        assert rs("mail", "A", 300, "192.0.2.99") in store.records(ZONE)

    def test_stale_before_is_rejected_and_nothing_written(self, store: ZoneStore) -> None:
        path = store.path_of(ZONE)
        before = path.read_bytes()
        good = Change(rs("www", "A", 1, "192.0.2.10"), rs("www", "A", 60, "203.0.113.10"))
        stale = Change(rs("mail", "A", 300, "198.51.100.99"), rs("mail", "A", 60, "203.0.113.25"))
        with pytest.raises(ChangeRejected, match=r"mail\.sbx\.test\. A changed since it was read.*found TTL 300 192\.0\.2\.25"):
            store.apply(ZONE, [good, stale])
        assert path.read_bytes() == before

    def test_ttl_drift_counts_as_a_change(self, store: ZoneStore) -> None:
        with pytest.raises(ChangeRejected, match="changed since it was read"):
            store.apply(ZONE, [Change(rs("www", "A", 3600, "192.0.2.10"), None)])

    def test_create_over_existing_is_rejected(self, store: ZoneStore) -> None:
        with pytest.raises(ChangeRejected, match="expected absent"):
            store.apply(ZONE, [Change(None, rs("www", "A", 60, "203.0.113.10"))])

    def test_cname_beside_other_data_is_rejected(self, store: ZoneStore) -> None:
        with pytest.raises(ChangeRejected, match="CNAME together with other records"):
            store.apply(ZONE, [Change(None, rs("alias", "A", 60, "192.0.2.1"))])
        with pytest.raises(ChangeRejected, match="CNAME together with other records"):
            store.apply(ZONE, [Change(None, rs("www", "CNAME", 60, "mail.sbx.test."))])
        # replacing the A by a CNAME in one apply is fine
        www = rs("www", "A", 1, "192.0.2.10")
        store.apply(ZONE, [Change(www, None), Change(None, rs("www", "CNAME", 60, "mail.sbx.test."))])

    def test_soa_outside_names_and_apex_ns_are_protected(self, store: ZoneStore) -> None:
        soa = next(r for r in store.records(ZONE) if r.type == "SOA")
        ns = next(r for r in store.records(ZONE) if r.type == "NS" and r.name == ZONE)
        with pytest.raises(ChangeRejected, match="SOA is kept by the sandbox"):
            store.apply(ZONE, [Change(soa, None)])
        with pytest.raises(ChangeRejected, match="not in zone"):
            store.apply(ZONE, [Change(None, RecordSet.build("www.example.net.", "A", 60, ["192.0.2.1"]))])
        with pytest.raises(ChangeRejected, match="needs NS records"):
            store.apply(ZONE, [Change(ns, None)])

    def test_missing_zone(self, tmp_path: Path) -> None:
        with pytest.raises(ZoneMissing, match="no zone file for nowhere.test."):
            ZoneStore(tmp_path).records("nowhere.test.")

    def test_concurrent_writers_in_threads_and_processes_lose_nothing(self, store: ZoneStore) -> None:
        code = (
            "import sys; from cutover.sandbox import ZoneStore; from cutover.records import RecordSet\n"
            "s = ZoneStore(sys.argv[1])\n"
            "for i in range(8): s.put('sbx.test.', RecordSet.build(f'p{sys.argv[2]}-{i}.sbx.test.', 'A', 60, ['192.0.2.1']))\n"
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", code, str(store.directory), str(n)], cwd=Path(__file__).parents[1])
            for n in range(2)
        ]

        def writer(n: int) -> None:
            for i in range(8):
                store.put(ZONE, rs(f"t{n}-{i}", "A", 60, "192.0.2.2"))

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [p.wait(timeout=30) for p in procs] == [0, 0]
        names = {r.name for r in ZoneStore(store.directory).records(ZONE)}
        expected = {f"{p}{n}-{i}.sbx.test." for p in "tp" for n in range(2) for i in range(8)}
        assert expected <= names
        assert store.serial(ZONE) == 1 + 32
