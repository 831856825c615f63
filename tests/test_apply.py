"""The maintenance window's core: guards, journal states, crash recovery, rollback.

These drive ``cutover.apply`` with an in-process provider to reach failure points
exactly; the same flows run against real servers in tests/integration.
"""

from __future__ import annotations

import pytest

from cutover import apply as applymod, plan as planmod
from cutover.errors import GuardError, ProviderError, UsageError
from cutover.journal import Journal
from cutover.records import RecordSet
from tests.fakes import PLAN

def values(provider, name, rtype):
    rs = provider.zone_data.get((name, rtype))
    return rs.values if rs else ()


def test_long_ttl_without_prepare_is_refused(env):
    ctx, provider, _, _ = env
    with pytest.raises(GuardError) as info:
        applymod.apply(ctx, verify_after=False)
    assert "live TTL is 3600s and no prepare was run" in str(info.value)
    assert provider.applied == []


def test_prepare_then_wait_then_apply(env):
    ctx, provider, journal, clock = env
    prep = applymod.prepare(ctx)
    assert prep.status == "insync" and len(prep.changes) == 2
    managed = {("www.example.com.", "A"), ("example.com.", "MX")}
    assert all(rs.ttl == 300 for key, rs in provider.zone_data.items() if key in managed)
    clock.t += 600  # the old 3600 s TTL may still be in caches
    with pytest.raises(GuardError, match="caches may hold the old TTL until"):
        applymod.apply(ctx, verify_after=False)
    clock.t += 3000
    out = applymod.apply(ctx, verify_after=False)
    assert values(provider, "www.example.com.", "A") == ("203.0.113.10",)
    assert out.changed == clock.t
    assert out.old_answers_until == clock.t + 300 + 1  # caches count whole seconds
    assert out.earliest_retire == clock.t + 3600
    run = journal.run(out.run_id)
    assert run.kind == "apply" and all(c.status == "landed" for c in run.changes)
    assert run.snapshot()[("www.example.com.", "A")].values == ("198.51.100.10",)


def test_drift_is_refused_and_force_overrides(env):
    ctx, provider, journal, _ = env
    provider.zone_data[("www.example.com.", "A")] = RecordSet.build("www.example.com.", "A", 300, ["192.0.2.99"])
    provider.zone_data[("example.com.", "MX")] = RecordSet.build("example.com.", "MX", 300, ["10 mail.old-host.net."])
    with pytest.raises(GuardError, match=r"www.example.com. A changed since the plan was written: live \[192.0.2.99\]"):
        applymod.apply(ctx, verify_after=False)
    out = applymod.apply(ctx, verify_after=False, force=True)
    assert values(provider, "www.example.com.", "A") == ("203.0.113.10",)
    assert "drift" in journal.run(out.run_id).forced


def test_safety_threshold_counts_replaced_and_deleted_sets_from_five_on(env, write_plan):
    ctx, provider, journal, clock = env
    for i in range(6):
        provider.zone_data[(f"h{i}.example.com.", "A")] = RecordSet.build(f"h{i}.example.com.", "A", 300, ["192.0.2.1"])
    moved = "".join(f'  - {{name: h{i}, type: A, to: ["192.0.2.2"]}}\n' for i in range(5))
    created = "".join(f'  - {{name: n{i}, type: A, to: ["192.0.2.2"]}}\n' for i in range(9))
    small = planmod.load(write_plan(PLAN.replace("100%", "25%").replace("records:\n", "records:\n" + created), "small.yaml"))
    ctx.plan = small
    applymod.prepare(ctx)
    clock.t += 4000
    assert not [r for r in applymod.zone_diff(ctx).refusals if r.guard == "safety"], "creates and 2 updates are no runaway"
    ctx.plan = planmod.load(write_plan(PLAN.replace("100%", "25%").replace("records:\n", "records:\n" + moved), "strict.yaml"))
    with pytest.raises(GuardError, match=r"replace or delete 7 of the zone's 11 record sets \(64%\), more than "
                                         r"safety.max_change_share \(25%\)"):
        applymod.apply(ctx, verify_after=False, force={"ttl"})


def test_not_confirmed_changes_nothing(env):
    ctx, provider, _, clock = env
    applymod.prepare(ctx)
    clock.t += 4000
    with pytest.raises(UsageError, match="not confirmed"):
        applymod.apply(ctx, verify_after=False, confirm=lambda _d: False)
    assert values(provider, "www.example.com.", "A") == ("198.51.100.10",)


def test_provider_failure_is_journalled_as_failed(env):
    ctx, provider, journal, clock = env
    applymod.prepare(ctx)
    clock.t += 4000

    def boom(stage):
        if stage == "before":
            raise ProviderError("backend said no")

    provider.fail = boom
    with pytest.raises(ProviderError):
        applymod.apply(ctx, verify_after=False)
    run = journal.runs(ctx.plan.zone, ("apply",))[-1]
    assert run.status == "failed" and "backend said no" in run.error
    assert all(c.status == "failed" for c in run.changes)


def test_error_after_landing_is_settled_by_reading_back(env):
    ctx, provider, journal, clock = env
    applymod.prepare(ctx)
    clock.t += 4000

    def lost_reply(stage):
        if stage == "after":
            raise ProviderError("connection reset while waiting for the reply")

    provider.fail = lost_reply
    with pytest.raises(ProviderError):
        applymod.apply(ctx, verify_after=False)
    run = journal.runs(ctx.plan.zone, ("apply",))[-1]
    assert run.status == "applied" and all(c.status == "landed" for c in run.changes)


@pytest.mark.parametrize("landed", [True, False])
def test_kill_while_sending_is_reconciled_on_the_next_run(env, landed):
    """The journal says "sending" and the process is gone: the next run reads the zone."""
    ctx, provider, journal, clock = env
    applymod.prepare(ctx)
    clock.t += 4000
    zdiff = applymod.zone_diff(ctx)
    run_id = journal.begin("apply", ctx.plan.zone, str(ctx.plan.path), ctx.plan.digest, zdiff.changes)
    journal.mark(run_id, "sending")
    if landed:
        provider.apply(zdiff.changes)  # ...and the process was killed before it could journal that
    out = applymod.apply(ctx, verify_after=False)
    crashed = journal.run(run_id)
    if landed:
        assert crashed.status == "applied" and out.status == "in-sync"
        assert any("all 2 changes are live" in n for n in out.notes)
    else:
        assert crashed.status == "failed" and out.status == "insync"
        assert values(provider, "www.example.com.", "A") == ("203.0.113.10",)
    assert all(c.status == ("landed" if landed else "failed") for c in crashed.changes)


def test_rollback_restores_snapshot_and_refuses_twice(env):
    ctx, provider, journal, clock = env
    applymod.prepare(ctx)
    clock.t += 4000
    applymod.apply(ctx, verify_after=False)
    out = applymod.rollback(ctx, verify_after=False)
    assert out.kind == "rollback"
    assert provider.zone_data[("www.example.com.", "A")] == RecordSet.build("www.example.com.", "A", 300, ["198.51.100.10"])
    assert values(provider, "example.com.", "MX") == ("10 mail.old-host.net.",)
    with pytest.raises(UsageError, match="nothing to roll back"):
        applymod.rollback(ctx, verify_after=False)


def test_rollback_refuses_drift_since_apply(env):
    ctx, provider, _, clock = env
    applymod.prepare(ctx)
    clock.t += 4000
    applymod.apply(ctx, verify_after=False)
    provider.zone_data[("www.example.com.", "A")] = RecordSet.build("www.example.com.", "A", 300, ["192.0.2.77"])
    with pytest.raises(GuardError, match="changed since the apply"):
        applymod.rollback(ctx, verify_after=False)


def test_second_run_on_locked_state_is_refused(env, tmp_path):
    ctx, *_ = env
    ctx.journal.lock()
    other = Journal(tmp_path / "state")
    try:
        from cutover.errors import StateError

        with pytest.raises(StateError, match="is locked by pid"):
            other.lock()
    finally:
        other.close()


def test_partial_apply_then_finishing_apply_roll_back_one_after_the_other(env):
    from cutover.errors import PartialApplyError

    ctx, provider, journal, clock = env
    applymod.prepare(ctx)
    clock.t += 4000
    provider.land_only_first = True
    with pytest.raises(PartialApplyError):
        applymod.apply(ctx, verify_after=False)
    provider.land_only_first = False
    first = journal.runs(ctx.plan.zone, ("apply",))[-1]
    assert first.status == "partial" and [c.status for c in first.changes] == ["landed", "failed"]
    applymod.apply(ctx, verify_after=False)  # finishes the job: only the record that did not land
    assert values(provider, "www.example.com.", "A") == ("203.0.113.10",)
    assert values(provider, "example.com.", "MX") == ("10 mail.example.com.",)

    applymod.rollback(ctx, verify_after=False)  # undoes the second apply...
    applymod.rollback(ctx, verify_after=False)  # ...then the first
    assert values(provider, "www.example.com.", "A") == ("198.51.100.10",)
    assert values(provider, "example.com.", "MX") == ("10 mail.old-host.net.",)
    with pytest.raises(UsageError, match="already rolled back"):
        applymod.rollback(ctx, verify_after=False)


def test_two_prepares_keep_the_longest_wait(env, write_plan):
    ctx, provider, journal, clock = env
    provider.zone_data[("www.example.com.", "A")] = RecordSet.build("www.example.com.", "A", 86400, ["198.51.100.10"])
    provider.zone_data[("example.com.", "MX")] = RecordSet.build("example.com.", "MX", 86400, ["10 mail.old-host.net."])
    ctx.plan = planmod.load(write_plan(PLAN.replace("prepare: {ttl: 300}", "prepare: {ttl: 3600}"), "step1.yaml"))
    applymod.prepare(ctx)  # 86400 -> 3600 at t0
    clock.t += 3700
    ctx.plan = planmod.load(write_plan(PLAN, "step2.yaml"))
    applymod.prepare(ctx)  # 3600 -> 300 at t0 + 3700
    clock.t += 3700  # the second prepare's wait is over, the first's (a day) is not
    with pytest.raises(GuardError, match="prepare lowered the TTL from 86400s"):
        applymod.apply(ctx, verify_after=False)
    clock.t += 86400
    assert applymod.apply(ctx, verify_after=False).status == "insync"


def test_forced_apply_right_after_prepare_keeps_the_retire_time_of_the_long_ttl(env):
    ctx, provider, journal, clock = env
    prep = applymod.prepare(ctx)  # 3600 -> 300
    clock.t += 51
    out = applymod.apply(ctx, verify_after=False, force=True)
    assert out.old_answers_until == prep.changed + 3600 + 1  # not the change + 300
    assert out.earliest_retire == max(out.old_answers_until, out.changed + 3600)
    assert out.retiring == ("198.51.100.10", "mail.old-host.net")


def test_a_rollback_interrupted_after_landing_is_settled_by_the_next_rollback(env):
    ctx, provider, journal, clock = env
    applymod.prepare(ctx)
    clock.t += 4000
    applymod.apply(ctx, verify_after=False)
    provider.fail = lambda when: (_ for _ in ()).throw(KeyboardInterrupt()) if when == "after" else None
    with pytest.raises(KeyboardInterrupt):
        applymod.rollback(ctx, verify_after=False)
    provider.fail = None
    journal.unlock()
    killed = journal.runs(ctx.plan.zone, ("rollback",))[-1]
    journal.mark(killed.id, "sending")  # what kill -9 leaves: the landing was never journalled
    again = applymod.rollback(ctx, verify_after=False)
    assert again.kind == "rollback" and again.status in ("applied", "insync")
    assert any("interrupted after sending" in n for n in again.notes)
    assert values(provider, "www.example.com.", "A") == ("198.51.100.10",)
    assert [r.kind for r in journal.runs(ctx.plan.zone)] == ["prepare", "apply", "rollback"], "no second rollback"


def test_a_change_started_without_settling_is_waited_for_and_verified_later(env):
    """A fleet starts every zone's change first and finishes each afterwards."""
    ctx, provider, journal, clock = env
    waited: list[str | None] = []
    provider.wait = lambda receipt, timeout: waited.append(receipt.token) or True
    applymod.prepare(ctx)
    waited.clear()
    clock.t += 4000
    started = applymod.apply(ctx, verify_after=False, settle=False)
    assert started.status == "applied" and waited == [] and journal.run(started.run_id).finished is None
    assert values(provider, "www.example.com.", "A") == ("203.0.113.10",)
    clock.t += 60
    done = applymod.finish(ctx, started, verify_after=False)
    run = journal.run(done.run_id)
    assert waited == [run.token] and done.status == "insync" and run.finished == clock.t
    assert applymod.finish(ctx, done) is done  # settled already: nothing left to do
