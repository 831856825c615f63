"""The session façade: one journal per state directory, each zone its own unit."""

from __future__ import annotations

from cutover.errors import ProviderError
from cutover.session import Failure, Session, explain, load_plans
from tests.fakes import PLAN


def test_each_zone_is_its_own_unit(write_plan, tmp_path):
    plans = load_plans([write_plan(PLAN, "a.yaml"), write_plan(PLAN.replace("example.com", "example.org"), "b.yaml")])
    warned: list[str] = []
    with Session(state=tmp_path / "state", warn=warned.append) as s:
        def operation(plan):
            if plan.zone == "example.com.":
                raise ProviderError("the API said no")
            return plan.zone

        done = s.each(plans, operation)
    results, worst = done.items, done.worst
    assert worst == 3 and done.fleets == [] and warned == ["the API said no"]
    assert isinstance(results[0], Failure) and results[0].as_dict()["exit_code"] == 3
    assert results[1] == "example.org."


def test_one_journal_per_state_directory(write_plan, tmp_path):
    a, b = load_plans([write_plan(PLAN, "a.yaml"), write_plan(PLAN, "b.yaml")])
    with Session() as s:
        assert s.journal(a) is s.journal(b) and s.state_dir(a) == tmp_path / ".cutover"
    with Session(state=tmp_path / "elsewhere") as s:
        assert s.state_dir(a) == tmp_path / "elsewhere"


def test_unexpected_errors_are_one_line_and_exit_3():
    message, code = explain(KeyError("boom"))
    assert code == 3 and message.startswith("unexpected error: KeyError") and "CUTOVER_DEBUG=1" in message
    assert explain(OSError(111, "Connection refused"))[0].startswith("network or system failure")


def test_a_long_fleet_says_how_far_it_got_and_goes_in_stages(tmp_path, monkeypatch):
    from cutover import fleet
    from tests.test_fleet import FLEET, load

    f = load(tmp_path, FLEET)
    plans = tuple(fleet.zone_plan(f, f"z{i}.example", [{"name": "www", "type": "A", "to": ["203.0.113.10"]}])
                  for i in range(250))
    said: list[str] = []
    order: list[str] = []
    with Session(state=tmp_path / "state", progress=said.append) as s:
        monkeypatch.setattr(s, "_expand", lambda _f, _source: fleet.Expansion(plans, (), ()))
        done = s.each([f], lambda plan: plan.zone, stages=(lambda plan: order.append(f"start {plan.zone}") or plan.zone,
                                                           lambda zone: order.append(f"finish {zone}") or zone.upper()))
    assert done.items == [p.zone.upper() for p in plans] and done.fleets[0].results == tuple(done.items)
    assert order == [f"start {p.zone}" for p in plans] + [f"finish {p.zone}" for p in plans]  # every zone started first
    assert said == [f"fleet fleet.yaml: {what} {k} of 250 zones" for what in ("started", "finished") for k in (100, 200, 250)]
