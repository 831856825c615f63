"""The provider template: ``Provider.apply`` refuses what no backend should be sent (types
it lacks, names outside the zone, drift since the read) in one wording, then calls the
plugin's ``_apply`` with exactly the changes; the plan loader finds the types first."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import pytest

from cutover import plan as plan_mod
from cutover.errors import DriftError, PlanError, UnsupportedChange
from cutover.records import Change, RecordKey, RecordSet, index
from providers import registry
from providers.base import ApplyReceipt, Provider

ZONE = "example.com."
SECRET = "s3cr3t-" + "k" * 12


def rs(name: str, rtype: str, ttl: int, *values: str) -> RecordSet:
    return RecordSet.build(f"{name}.{ZONE}" if name != "@" else ZONE, rtype, ttl, values)


class Recording(Provider):
    """A backend that holds only A and TXT, and notes every call the template makes."""

    supported_types = frozenset({"A", "TXT"})
    service = "Recording"

    def __init__(self, live: Sequence[RecordSet] = ()) -> None:
        super().__init__(ZONE, {})
        self.live = index(live)
        self.reads: list[set[RecordKey]] = []
        self.sent: list[Sequence[Change]] = []

    def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
        self.reads.append(set(wanted))
        return sorted(self.live.values())

    def _apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        self.sent.append(changes)
        return ApplyReceipt(token="t1", detail="sent")

    def nameservers(self) -> list[str]:
        return []

    def scrub(self, text: str) -> str:
        return text.replace(SECRET, "***")


class Native(Recording):
    """The same backend, one that refuses a stale ``before`` itself (a prerequisite)."""

    backend_checks_before = True


WWW = rs("www", "A", 300, "192.0.2.10")
NEW_WWW = rs("www", "A", 60, "203.0.113.10")


# -- the record types, and the zone ---------------------------------------------------------


def test_an_unsupported_type_is_refused_before_anything_is_read_or_sent() -> None:
    p = Recording([WWW])
    with pytest.raises(UnsupportedChange) as refused:
        p.apply([Change(WWW, NEW_WWW), Change(None, rs("@", "MX", 300, "10 mail.example.com.")),
                 Change(None, rs("@", "CAA", 300, '0 issue "letsencrypt.org"')), Change(None, rs("www", "MX", 300, "10 mx.example.com."))])
    assert str(refused.value) == "Recording cannot change CAA, MX records (it supports A, TXT); nothing was sent"
    assert refused.value.exit_code == 2
    assert p.reads == [] and p.sent == []


def test_a_name_outside_the_zone_is_refused_before_anything_is_read_or_sent() -> None:
    p = Recording()
    with pytest.raises(UnsupportedChange, match=r"^Recording: not in zone example\.com\.: www\.example\.net\.; nothing was sent$"):
        p.apply([Change(None, RecordSet.build("www.example.net.", "A", 60, ["192.0.2.1"]))])
    assert p.reads == [] and p.sent == []


def test_any_type_when_the_backend_speaks_dns_itself() -> None:
    class AnyType(Recording):
        supported_types = None

    assert AnyType.type_problem("TLSA") is None
    assert Recording.type_problem("TLSA") == "cannot change TLSA records (it supports A, TXT)"


# -- the shared re-read --------------------------------------------------------------------


def test_apply_reads_the_changed_keys_then_calls_apply_with_exactly_the_changes() -> None:
    p = Recording([WWW])
    changes = [Change(WWW, NEW_WWW), Change(None, rs("@", "TXT", 300, '"v=spf1 -all"'))]
    receipt = p.apply(changes)
    assert p.reads == [{c.key for c in changes}]
    assert len(p.sent) == 1 and p.sent[0] is changes
    assert receipt == ApplyReceipt(token="t1", detail="sent")


def test_drift_is_refused_in_one_wording_and_nothing_is_sent() -> None:
    theirs = rs("www", "A", 3600, "198.51.100.7")
    appeared = rs("new", "TXT", 300, '"x"')
    p = Recording([theirs, appeared])
    with pytest.raises(DriftError) as refused:
        p.apply([Change(WWW, NEW_WWW), Change(None, rs("new", "TXT", 60, '"y"'))])
    assert str(refused.value) == (
        "Recording: the zone example.com. changed since it was read, nothing was sent: "
        "www.example.com. A is now ttl 3600 ['198.51.100.7'] (read as ttl 300 ['192.0.2.10']); "
        "new.example.com. TXT is now ttl 300 ['\"x\"'] (read as absent). Run `cutover diff` to see the zone now."
    )
    assert refused.value.exit_code == 2
    assert p.sent == []


def test_a_deleted_record_set_is_drift_too() -> None:
    p = Recording([])
    with pytest.raises(DriftError, match=r"www\.example\.com\. A is now absent \(read as ttl 300 \['192\.0\.2\.10'\]\)"):
        p.apply([Change(WWW, None)])


def test_a_drift_message_stays_short_and_carries_no_secret() -> None:
    many = [rs(f"h{i}", "A", 300, *(f"192.0.2.{j}" for j in range(1, 8))) for i in range(14)]
    p = Recording([*many, rs("key", "TXT", 300, f'"{SECRET}"')])
    changes = [Change(rs(f"h{i}", "A", 300, "203.0.113.1"), None) for i in range(14)]
    with pytest.raises(DriftError) as refused:
        p.apply([*changes, Change(None, rs("key", "TXT", 300, '"new"'))])
    text = str(refused.value)
    assert "; and 5 more." in text and text.count("is now") == 10
    assert "'192.0.2.4'] and 3 more (read as" in text
    assert SECRET not in text


def test_a_backend_that_checks_before_itself_is_not_read_again() -> None:
    p = Native([rs("www", "A", 3600, "198.51.100.7")])  # drifted, but the backend will see to it
    changes = [Change(WWW, NEW_WWW)]
    p.apply(changes)
    assert p.reads == [] and p.sent == [changes]


def test_a_provider_may_keep_the_read_behind_the_check() -> None:
    class KeepsIds(Recording):
        def _live(self, keys: Collection[RecordKey]) -> Mapping[RecordKey, RecordSet]:
            self.kept = {k: self.live[k] for k in keys if k in self.live}
            return self.kept

    p = KeepsIds([WWW])
    p.apply([Change(WWW, NEW_WWW)])
    assert p.reads == [] and p.kept == {WWW.key: WWW} and len(p.sent) == 1


def test_nothing_to_change_reaches_no_backend() -> None:
    p = Recording([WWW])
    assert p.apply([]).detail == "nothing to change"
    assert p.reads == [] and p.sent == []


def test_a_plugin_that_still_overrides_apply_keeps_working() -> None:
    class Legacy(Provider):
        def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
            return []

        def apply(self, changes: Sequence[Change]) -> ApplyReceipt:
            return ApplyReceipt(detail="own apply")

        def nameservers(self) -> list[str]:
            return []

    class Neither(Legacy):
        apply = Provider.apply

    assert Legacy(ZONE, {}).apply([Change(None, WWW)]).detail == "own apply"
    with pytest.raises(NotImplementedError, match="Neither implements neither _apply nor apply"):
        Neither(ZONE, {}).apply([Change(None, WWW)])


# -- the built-in providers declare what their backends do ---------------------------------------


@pytest.mark.parametrize("name, checks_natively", [
    ("route53", True), ("rfc2136", True), ("sandbox", True), ("manual", True),
    ("powerdns", False), ("cloudflare", False), ("lexicon", False), ("http", False),
])
def test_each_builtin_says_whether_its_backend_checks_before(name: str, checks_natively: bool) -> None:
    cls = registry.provider_class(name)
    assert cls.backend_checks_before is checks_natively
    assert cls.supported_types is None or "A" in cls.supported_types
    assert cls._apply is not Provider._apply and cls.apply is Provider.apply


# -- at plan time: before the journal begins ------------------------------------------------------


def plan_data(provider: Mapping[str, Any], *records: Mapping[str, Any]) -> dict[str, Any]:
    return {"zone": "example.com", "provider": dict(provider), "records": list(records)}


def test_the_plan_loader_refuses_a_type_the_backend_lacks() -> None:
    pdns = {"type": "powerdns", "url": "http://127.0.0.1:8081", "api_key": "k"}
    data = plan_data(pdns, {"name": "www", "type": "A", "to": ["192.0.2.1"]},
                     {"name": "@", "type": "SOA", "to": ["ns1.example.com. host.example.com. 1 7200 900 1209600 600"]})
    with pytest.raises(PlanError) as refused:
        plan_mod.build(data, Path("plan.yaml"), {})
    [problem] = refused.value.problems
    assert problem.path == "records[1].type"
    assert problem.message.startswith("the powerdns provider cannot change SOA records (it supports A, AAAA, ")
    assert refused.value.exit_code == 2


def test_path_settings_are_taken_from_the_plan_folder(tmp_path: Path) -> None:
    record = {"name": "www", "type": "A", "to": ["192.0.2.1"]}
    relative = plan_mod.build(plan_data({"type": "sandbox", "path": "zones"}, record), tmp_path / "plan.yaml", {})
    assert relative.provider.settings["path"] == str(tmp_path / "zones")
    absolute = plan_mod.build(plan_data({"type": "sandbox", "path": "/srv/zones"}, record), tmp_path / "plan.yaml", {})
    assert absolute.provider.settings["path"] == "/srv/zones"
