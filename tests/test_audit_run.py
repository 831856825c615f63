"""An audit run without the network: the stored results, resuming, --fresh and --recheck,
the resolver check, the progress line, and the outputs (table, JSON, CSV, HTML)."""

from __future__ import annotations

import csv
import io
import json
import os
import stat

import pytest

from cutover import audit
from cutover.audit import output, run as runmod
from cutover.audit.classify import Lookup, Observation, Server, ServerCheck
from cutover.audit.store import AuditStore
from cutover.errors import ProviderError, StateError, UsageError
from cutover.observe.types import Answer
from cutover.session import Session

NS = Server("ns1.dns.example.", "192.0.2.53")
ADDRESS = {"moved": "203.0.113.10", "old": "198.51.100.10", "other": "192.0.2.80"}


def observation(domain: str) -> Observation:
    """moved-*, old-*, other-*, and gone-* (no server) domains, by their first label."""
    kind = domain.split("-")[0]
    if kind == "gone":
        return Observation(domain, problem="the domain does not exist (NXDOMAIN from resolver 127.0.0.1)")
    value = ADDRESS[kind]
    if kind == "other":
        value = '=HYPERLINK("http://x")'  # what a hostile server could make a detail say
    return Observation(domain, ("ns1.dns.example.",), "", (ServerCheck(NS, "ok", "", 1),),
                       (Lookup(domain, "A", "apex", "other", (value,), NS.label),))


@pytest.fixture
def fake_lookups(monkeypatch):
    """``audit_many`` answering from ``observation``; records which domains were asked."""
    asked: list[list[str]] = []

    async def audit_many(domains, resolvers, names, limits, emit, window):
        asked.append(list(domains))
        for d in domains:
            emit(observation(d))
        return len(asked[-1])

    async def query_round(targets, resolvers, **kw):
        return [Answer(r, t.key, "refused", None, ()) for r in resolvers for t in targets]

    monkeypatch.setattr(runmod, "audit_many", audit_many)
    monkeypatch.setattr(runmod.engine, "query_round", query_round)
    return asked


def request(tmp_path, domains=("moved-1.example.", "old-1.example.", "gone-1.example."), **kw):
    path = tmp_path / "domains.txt"
    if not path.exists():
        path.write_text("".join(n + "\n" for n in domains))
    return audit.request(path, old=["198.51.100.10"], new=["203.0.113.10"], resolvers="127.0.0.1:5353", **kw)


def test_results_are_stored_and_a_second_run_asks_nothing(tmp_path, fake_lookups):
    with Session() as s:
        first = s.audit(request(tmp_path))
    assert [r.status for _, r, _ in first.results] == ["moved", "old", "unreachable"]
    assert (first.from_state, first.audited, first.all_moved) == (0, 3, False)
    state = tmp_path / ".cutover"
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(state / "audit.sqlite3").st_mode) == 0o600
    with Session() as s:
        again = s.audit(request(tmp_path))
    assert (again.from_state, again.audited) == (3, 0) and len(fake_lookups) == 1
    assert [r for _, r, _ in again.results] == [r for _, r, _ in first.results]


def test_resume_asks_only_the_domains_without_a_result(tmp_path, fake_lookups):
    req = request(tmp_path)
    with AuditStore(tmp_path / "state", req.params) as store:  # an earlier run, interrupted after one domain
        store.save([("moved-1.example.", "moved", json.dumps(runmod.classify(observation("moved-1.example."),
                                                                            req.old, req.new).as_dict()))])
    with Session(state=tmp_path / "state") as s:
        report = s.audit(req)
    assert fake_lookups == [["old-1.example.", "gone-1.example."]]
    assert (report.from_state, report.audited) == (1, 2)
    assert [d.name for d, _, _ in report.results] == ["moved-1.example.", "old-1.example.", "gone-1.example."]


def test_fresh_and_recheck(tmp_path, fake_lookups):
    with Session() as s:
        s.audit(request(tmp_path))
        s.audit(request(tmp_path, recheck="old,unreachable"))
        s.audit(request(tmp_path, fresh=True))
    assert fake_lookups == [["moved-1.example.", "old-1.example.", "gone-1.example."],
                            ["old-1.example.", "gone-1.example."],
                            ["moved-1.example.", "old-1.example.", "gone-1.example."]]


def test_other_parameters_are_another_run(tmp_path, fake_lookups):
    with Session() as s:
        s.audit(request(tmp_path))
        s.audit(request(tmp_path, names=["shop"]))
    assert len(fake_lookups) == 2


def test_one_audit_per_state_directory(tmp_path):
    with AuditStore(tmp_path, {"old": []}):
        with pytest.raises(StateError, match=r"is locked by pid \d+: another `cutover audit` is running there"):
            AuditStore(tmp_path, {"old": []})
    (tmp_path / "file").write_text("")
    with pytest.raises(StateError, match="is a file, not a directory"):
        AuditStore(tmp_path / "file", {})


def test_no_answering_resolver_is_exit_3(tmp_path, fake_lookups, monkeypatch):
    async def silent(targets, resolvers, **kw):
        return [Answer(r, t.key, "timeout", None, (), "no answer after 3 tries of 2s") for r in resolvers for t in targets]

    monkeypatch.setattr(runmod.engine, "query_round", silent)
    with Session() as s, pytest.raises(ProviderError, match=r"no resolver answers \(127.0.0.1:5353\): nothing was audited"):
        s.audit(request(tmp_path))
    assert fake_lookups == []


@pytest.mark.parametrize("options, message", [
    ({"old": ["198.51.100.10"], "new": ["198.51.100.10"]}, "--old and --new both name 198.51.100.10"),
    ({"recheck": "moved,late"}, "--recheck: 'late' is not a status"),
    ({"timeout": 0}, "--timeout 0: expected seconds"),
    ({"concurrency": 0}, "--concurrency 0"),
    ({"rate": -1}, "--rate -1"),
    ({"retries": 11}, "--retries 11"),
    ({"processes": 0}, "--processes 0"),
    ({"resolvers": "no-such-file.txt"}, "--resolvers: resolver file"),
])
def test_bad_options(tmp_path, options, message):
    (tmp_path / "d.txt").write_text("example.com\n")
    given = {"old": ["198.51.100.10"], "new": ["203.0.113.10"], "resolvers": "127.0.0.1", **options}
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        audit.request(tmp_path / "d.txt", **given)


def test_system_resolvers_by_default(monkeypatch):
    class Fake:
        nameservers, port = ["192.0.2.1"], 53

        def __init__(self, configure):
            pass

    monkeypatch.setattr(runmod.dns.resolver, "Resolver", Fake)
    assert [r.endpoint for r in runmod.resolvers_from(None)] == ["192.0.2.1"]
    Fake.nameservers = []
    with pytest.raises(UsageError, match="the system names no resolver"):
        runmod.resolvers_from(None)


def test_progress_lines(tmp_path):
    now = [0.0]

    class Stream(io.StringIO):
        def isatty(self):
            return False

    stream = Stream()
    meter = runmod.Meter(stream, clock=lambda: now[0])
    meter.start(100, 20)
    meter.update([("a.", "moved", "{}")] * 10)  # too soon for a line
    now[0] = 20.0
    meter.update([("b.", "old", "{}")] * 10)
    assert stream.getvalue().splitlines() == [
        "audit: 20 of 100 domains have a result from an earlier run (--fresh asks them again)",
        "audit: 20/80 domains (25%), 1/s, about 60 s left; moved 10, old 10",
    ]


def test_progress_on_a_terminal_is_one_line_redrawn():
    now = [0.0]

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    meter = runmod.Meter(stream, clock=lambda: now[0])
    meter.start(3, 0)
    now[0] = 1.0
    meter.update([("a.", "moved", "{}"), ("b.", "unreachable", "{}")])
    meter.finish()
    assert stream.getvalue() == ("\r\x1b[2Kaudit: 2/3 domains (67%), 2/s, about 0 s left; moved 1, unreachable 1"
                                 "\r\x1b[2Kaudit: 2/3 domains (67%), 2/s, about 0 s left; moved 1, unreachable 1\n")


def test_limits_are_shared_between_processes():
    shared = runmod._shared_limits(audit.Limits(rate=500, concurrency=50, total=1024), 2)
    assert (shared.rate, shared.concurrency, shared.total) == (250, 25, 512)
    assert runmod._shared_limits(audit.Limits(rate=0, concurrency=1), 4).rate == 0


def test_outputs(tmp_path, fake_lookups):
    path = tmp_path / "customers.csv"
    path.write_text("customer,domain,email\nK1,moved-1.example,a@x\nK2,old-1.example,b@x\nK3,other-1.example,c@x\n")
    with Session() as s:
        report = s.audit(audit.request(path, old=["198.51.100.10"], new=["203.0.113.10"], resolvers="127.0.0.1"))
    doc = output.document(report)
    assert [(d["domain"], d["status"], d["line"], d["fields"]["customer"]) for d in doc["domains"]] == [
        ("moved-1.example.", "moved", 2, "K1"), ("old-1.example.", "old", 3, "K2"), ("other-1.example.", "elsewhere", 4, "K3")]
    assert set(doc["domains"][0]) >= {"domain", "status", "records", "detail"}
    assert doc["summary"] == {"total": 3, "all_moved": False, "moved": 1, "old": 1, "mixed": 0, "elsewhere": 1,
                              "unreachable": 0}
    rows = list(csv.DictReader(io.StringIO(output.csv_text(report))))
    assert list(rows[0]) == ["domain", "customer", "email", "status", "old_records", "new_records", "other_records",
                             "nameservers", "detail"]
    assert (rows[1]["domain"], rows[1]["customer"], rows[1]["old_records"]) == ("old-1.example", "K2", "old-1.example A 198.51.100.10")
    assert rows[2]["other_records"] == 'other-1.example A =HYPERLINK("http://x")'
    text = output.table(report)
    assert "old-1.example" in text and text.endswith("3 domains: 1 moved, 1 old, 1 elsewhere; not every domain has moved")
    page = output.html_page(report, now=0)
    assert "<script" not in page and 'data-status="old"' in page and "=HYPERLINK(&quot;http://x&quot;)" in page
    assert 'data-all-moved="false"' in page


def test_csv_cells_that_a_spreadsheet_would_run_are_defused():
    assert output._cell("=1+1") == "'=1+1" and output._cell("-x") == "'-x" and output._cell("ok") == "ok"
