"""The background probe scheduler, driven through an in-process service client.

The client below plays a probe service: measurements take a given number of polls,
and failures can be injected. Real HTTP against local APIs is in
``tests/integration/test_watch_probes.py``.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest

from cutover.observe.probes import Progress
from cutover.observe.probes import globalping
from cutover.observe.probes.schedule import ProbeRunner
from cutover.observe.probes.services import ProbeEntry
from cutover.observe.types import Answer, Target, Vantage
from cutover.resolvers import Resolver
from cutover.times import iso_precise
from providers.httpclient import ApiError

WWW = Target(("www.example.com.", "A"), ("203.0.113.10",), ("198.51.100.10",), 300)
MX = Target(("example.com.", "MX"), ("10 mx2.example.com.",), ("10 mail.example.com.",), 300)
NS = Target(("example.com.", "NS"), ("ns1.new.example.",), ("ns1.old.example.",), 300, recursive=False)
SECRET = "s3cr3t-t0ken-value"


class FakeService:
    """A probe service: ``polls`` reads before a measurement is final; one answer per
    probe country, ``old`` while ``serving`` says so."""

    def __init__(self, polls: int = 2, countries: tuple[str, ...] = ("JP", "DE"), token: str = "") -> None:
        self.settings = globalping.GlobalpingSettings(every=600.0, url="http://127.0.0.1:9", token=token)
        self.polls = polls
        self.countries = countries
        self.serving = "old"
        self.created: list[tuple[str, float]] = []
        self.reads: dict[str, int] = {}
        self.fail_create: list[Exception] = []
        self.fail_poll: list[Exception] = []
        self.closed = False
        self.lock = threading.Lock()

    def create(self, target: Target) -> str:
        with self.lock:
            if self.fail_create:
                raise self.fail_create.pop(0)
            mid = f"m{len(self.created) + 1}"
            self.created.append((target.name, time.time()))
            self.reads[mid] = 0
            return mid

    def ready_at(self, measurement_id: str) -> float:
        return 0.0

    def progress(self, measurement_id: str, target: Target) -> Progress | None:
        with self.lock:
            if self.fail_poll:
                raise self.fail_poll.pop(0)
            self.reads[measurement_id] += 1
            done = self.reads[measurement_id] >= self.polls
        values = target.old if self.serving == "old" else target.new
        answers = tuple(Answer(Resolver("own", name=f"globalping {c}", country=c, group="probe"), target.key, self.serving,
                               60, values, vantage=Vantage("globalping", "EU", c, "City", 64500, "Net"))
                        for c in (self.countries if done else self.countries[:1]))
        return Progress(done, answers)

    def close(self) -> None:
        self.closed = True


def runner(service: FakeService, targets=(WWW,), **kw) -> ProbeRunner:
    entry = ProbeEntry("globalping", service.settings, "watch.probes[0]")
    return ProbeRunner([entry], targets, clients=[service], **kw)


def test_a_measurement_per_record_joins_the_snapshot_with_its_vantage_and_arrival_time():
    service = FakeService()
    r = runner(service, (WWW, MX, NS)).start()
    try:
        assert r.wait_settled(5)
        answers, report = r.snapshot()
    finally:
        r.close()
    assert sorted(name for name, _ in service.created) == ["example.com.", "www.example.com."]  # NS: resolvers only
    assert {(a.key, a.vantage.country) for a in answers} == {(WWW.key, "JP"), (WWW.key, "DE"), (MX.key, "JP"), (MX.key, "DE")}
    assert all(a.state == "old" and a.measured is not None for a in answers)
    (entry,) = report
    assert entry["service"] == "globalping" and entry["answers"] == 4 and entry["in_flight"] == 0 and entry["problems"] == []
    assert {rec["state"] for rec in entry["records"]} == {"finished"} and entry["last_finished"] is not None
    assert service.closed


def test_the_latest_result_stays_until_a_newer_replaces_it():
    service = FakeService(polls=1)
    service.settings = globalping.GlobalpingSettings(every=60.0, url="http://127.0.0.1:9")
    clock = [time.time()]
    r = runner(service, clock=lambda: clock[0]).start()
    try:
        assert r.wait_settled(5)
        first, _ = r.snapshot()
        again, _ = r.snapshot()  # no new measurement before every: the same answers again
        assert [a.state for a in first] == [a.state for a in again] == ["old", "old"] and len(service.created) == 1
        service.serving = "new"
        clock[0] += 61  # the next measurement is due
        deadline = time.time() + 5
        while time.time() < deadline and (len(service.created) < 2 or r.snapshot()[0][0].state != "new"):
            time.sleep(0.05)
        answers, _ = r.snapshot()
    finally:
        r.close()
    assert [a.state for a in answers] == ["new", "new"] and len(service.created) == 2


def test_a_failing_service_is_reported_once_and_tried_again_later_without_the_secret():
    service = FakeService(token=SECRET)
    service.fail_create = [ApiError(f"globalping: POST /v1/measurements: HTTP 500: boom (token {SECRET})", 500)]
    clock = [time.time()]
    r = runner(service, clock=lambda: clock[0]).start()
    try:
        assert r.wait_settled(5)
        answers, report = r.snapshot()
        assert answers == () and len(service.created) == 0
        (problem,) = report[0]["problems"]
        assert "HTTP 500" in problem and SECRET not in problem and "***" in problem
        assert r.snapshot()[1][0]["problems"] == []  # said once
        clock[0] += 61  # RETRY_FAILED later it tries again
        deadline = time.time() + 5
        while time.time() < deadline and not r.snapshot()[0]:
            time.sleep(0.05)
        assert len(service.created) == 1 and r.snapshot()[0]
    finally:
        r.close()


def test_a_rate_limited_creation_waits_what_the_service_said():
    service = FakeService()
    service.fail_create = [globalping.GlobalpingLimited("globalping: rate limited", 1800.0)]
    now = time.time()
    r = runner(service, clock=lambda: now).start()
    try:
        assert r.wait_settled(5)
        assert r._entries[0].next_start[WWW.key] == pytest.approx(now + 1800.0)
    finally:
        r.close()


def test_a_failed_read_is_retried_and_a_measurement_that_never_ends_gives_its_partial_results(monkeypatch):
    monkeypatch.setattr(globalping, "MEASUREMENT_TIMEOUT", 0.6)
    monkeypatch.setattr("cutover.observe.probes.schedule.RETRY_POLL", 0.1)
    service = FakeService(polls=10_000)
    service.fail_poll = [ApiError("globalping: GET /v1/measurements/m1: HTTP 502: bad gateway", 502)]
    r = runner(service).start()
    try:
        assert r.wait_settled(5)
        answers, report = r.snapshot()
    finally:
        r.close()
    assert [a.resolver.country for a in answers] == ["JP"]  # what had arrived
    problems = " | ".join(report[0]["problems"])
    assert "HTTP 502" in problems and "did not finish within 0.6s; its partial results are used" in problems


def test_results_older_than_two_schedules_are_dropped_and_said():
    service = FakeService(polls=1)
    clock = [time.time()]
    r = runner(service, clock=lambda: clock[0])
    r._stop.set()  # no background loop: drive it by hand
    r._create(0, WWW)
    r._poll((0, WWW.key))
    assert len(r.snapshot()[0]) == 2
    clock[0] += 2 * 600 + 61
    answers, report = r.snapshot()
    r.close()
    assert answers == () and "too old and were dropped" in report[0]["problems"][0]


def test_a_restarted_watch_reuses_the_last_rounds_results_and_resumes_a_measurement_in_flight():
    now = time.time()
    finished = datetime.fromtimestamp(now - 30, timezone.utc).replace(microsecond=0)  # JSON keeps milliseconds
    probe = Answer(Resolver("own", name="globalping JP", country="JP", group="probe"), WWW.key, "old", 60, WWW.old,
                   vantage=Vantage("globalping", "AS", "JP", "Tokyo", 2516, "KDDI"), measured=finished)
    doc = {
        "time": iso_precise(now - 10),
        "records": [{"name": WWW.name, "type": "A", "answers": [probe.as_dict(now=finished)]},
                    {"name": MX.name, "type": "MX", "answers": []}],
        "probes": [{"service": "globalping", "entry": "watch.probes[0]", "url": "http://127.0.0.1:9", "every": 600.0,
                    "records": [
                        {"name": WWW.name, "type": "A", "state": "finished", "id": "old1",
                         "started": iso_precise(now - 40), "finished": iso_precise(now - 30)},
                        {"name": MX.name, "type": "MX", "state": "in-progress", "id": "m9", "started": iso_precise(now - 5)},
                    ]}],
    }
    service = FakeService(polls=1)
    service.reads["m9"] = 0
    r = runner(service, (WWW, MX), previous=doc).start()
    try:
        assert r.wait_settled(5)
        answers, report = r.snapshot()
    finally:
        r.close()
    assert service.created == []  # nothing paid for again within every
    restored = [a for a in answers if a.key == WWW.key]
    assert restored == [probe]  # the stored answer, vantage and arrival time included
    assert {a.resolver.country for a in answers if a.key == MX.key} == {"JP", "DE"} and service.reads["m9"] == 1
    assert [rec["id"] for rec in report[0]["records"]] == ["old1", "m9"]


def test_a_measurement_the_service_ended_without_results_is_not_read_again():
    class Ended(ApiError):
        final = True

    service = FakeService(polls=1)
    service.fail_poll = [Ended("ripe-atlas: measurement m1 ended (No suitable probes) without any result")]
    r = runner(service).start()
    try:
        assert r.wait_settled(5)
        answers, report = r.snapshot()
    finally:
        r.close()
    assert answers == () and service.reads["m1"] == 0 and report[0]["in_flight"] == 0
    assert "No suitable probes" in report[0]["problems"][0]


def test_a_record_is_awaited_until_its_first_result_and_a_refused_start_is_not():
    service = FakeService(polls=1)
    clock = [time.time()]
    r = runner(service, (WWW, MX), clock=lambda: clock[0])
    r._stop.set()  # no background loop: drive it by hand
    assert r.awaited() == ["globalping: www.example.com. A", "globalping: example.com. MX"]  # not even started
    r._create(0, WWW)
    service.fail_create = [ApiError("globalping: POST /v1/measurements: HTTP 503: down", 503)]
    r._create(0, MX)  # refused: reported, and not waited for
    assert r.awaited() == ["globalping: www.example.com. A"]  # in flight, no result yet
    r._poll((0, WWW.key))
    assert r.awaited() == []
    answers, _ = r.snapshot()
    r.close()
    assert {a.measured for a in answers} == {datetime.fromtimestamp(clock[0], timezone.utc)}  # when it began


def test_a_restarted_watch_carries_a_result_over_exactly_as_long_as_a_running_one():
    now = time.time()
    expiry = 2 * 600 + globalping.MEASUREMENT_TIMEOUT

    def stored(age: float) -> dict:
        return {"time": iso_precise(now), "records": [{"name": WWW.name, "type": "A", "answers": []}],
                "probes": [{"service": "globalping", "entry": "watch.probes[0]", "url": "http://127.0.0.1:9", "every": 600.0,
                            "records": [{"name": WWW.name, "type": "A", "state": "finished", "id": "m1",
                                         "started": iso_precise(now - age - 5), "finished": iso_precise(now - age)}]}]}

    kept = runner(FakeService(), previous=stored(expiry - 5), clock=lambda: now)
    dropped = runner(FakeService(), previous=stored(expiry + 5), clock=lambda: now)
    try:
        assert kept.snapshot()[1][0]["records"][0]["state"] == "finished"
        _, report = dropped.snapshot()
        assert report[0]["records"][0]["state"] == "waiting"
        assert "too old and were dropped" in report[0]["problems"][0]
    finally:
        kept.close()
        dropped.close()
