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
