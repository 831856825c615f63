"""What watch looks for, decided from the journal: partial applies, several applies,
rollbacks, a forced apply right after prepare, and status after a newer change."""

from __future__ import annotations

import pytest

from cutover import apply as applymod, monitor, plan as planmod
from cutover.errors import PartialApplyError
from cutover.records import index
from tests.fakes import PLAN

WWW, MX = ("www.example.com.", "A"), ("example.com.", "MX")


def targets(ctx, provider):
    setup = monitor.setup(ctx.plan, ctx.journal, index(provider.records()), [], "127.0.0.1:9")
    return setup, {t.key: t for t in setup.targets}


def test_a_change_that_did_not_land_is_still_watched(env):
    ctx, provider, _, clock = env
    applymod.prepare(ctx)
    clock.t += 4000
    provider.land_only_first = True
    with pytest.raises(PartialApplyError):
        applymod.apply(ctx, verify_after=False)
    setup, found = targets(ctx, provider)
    assert set(found) == {WWW, MX}
    assert found[MX].new == ("10 mail.example.com.",) and found[MX].old == ("10 mail.old-host.net.",)
    assert setup.change_time == clock.t


def test_records_from_several_applies_are_all_watched(env, write_plan):
    ctx, provider, _, clock = env
    only_www = planmod.load(write_plan(PLAN.replace('  - {name: "@", type: MX, ttl: 300, from: ["10 mail.old-host.net."], to: ["10 mail.example.com."]}\n', ""), "www.yaml"))
    full = ctx.plan
    applymod.prepare(ctx)
    clock.t += 4000
    ctx.plan = only_www
    applymod.apply(ctx, verify_after=False)
    first = clock.t
    clock.t += 60
    ctx.plan = full
    applymod.apply(ctx, verify_after=False)
    setup, found = targets(ctx, provider)
    assert set(found) == {WWW, MX}
    assert setup.change_time == first + 60 and setup.change_source == "apply runs 2, 3"


def test_after_a_rollback_the_restored_answers_are_new(env):
    ctx, provider, _, clock = env
    applymod.prepare(ctx)
    clock.t += 4000
    applymod.apply(ctx, verify_after=False)
    applymod.rollback(ctx, verify_after=False)
    setup, found = targets(ctx, provider)
    assert found[WWW].new == ("198.51.100.10",) and found[WWW].old == ("203.0.113.10",)
    assert setup.change_source.startswith("rollback run")


def test_forced_apply_right_after_prepare_keeps_the_long_ttl(env):
    ctx, provider, _, clock = env
    applymod.prepare(ctx)  # 3600 -> 300
    clock.t += 600
    applymod.apply(ctx, verify_after=False, force=True)
    _, found = targets(ctx, provider)
    assert found[WWW].old_ttl == 3000  # caches filled just before prepare keep the old answer that long


def test_status_has_no_verdict_from_a_round_older_than_the_last_change(env):
    ctx, provider, journal, clock = env
    applymod.prepare(ctx)
    clock.t += 4000
    applymod.apply(ctx, verify_after=False, force=True)
    setup, _ = targets(ctx, provider)
    _, doc = monitor.record_round(setup, journal, [], clock.t + 10)
    assert monitor.status(ctx.plan, journal)["verdict"] is not None
    clock.t += 100
    applymod.rollback(ctx, verify_after=False)
    assert monitor.status(ctx.plan, journal)["verdict"] is None
