"""The shared conformance suite every provider passes.

A provider's test module subclasses ``ProviderConformance`` and defines a ``provider``
fixture that yields a ``Provider`` for a fresh zone holding nothing but what the
backend itself puts there (SOA, NS). Third-party plugins can reuse this class:

    from tests.integration.conformance import ProviderConformance

    class TestMyProvider(ProviderConformance):
        @pytest.fixture
        def provider(self, my_server):
            yield MyProvider("conformance.test.", {...})
"""

from __future__ import annotations

import pytest

from cutover.errors import DriftError, UnsupportedChange
from cutover.records import Change, RecordSet, index
from providers.base import Provider


#: Types some backends lack, with a value each: one of them is missing from every
#: ``supported_types`` that is not None (SOA for the backends that keep it themselves).
UNCOMMON = {
    "HINFO": '"PC" "Linux"',
    "URI": '10 1 "https://www.example.com/"',
    "LOC": "52 22 23.000 N 4 53 32.000 E -2.00m 1m 10000m 10m",
    "SOA": "ns1.example.com. hostmaster.example.com. 1 7200 900 1209600 600",
}


def rs(provider: Provider, name: str, rtype: str, ttl: int, *values: str) -> RecordSet:
    fqdn = provider.zone if name == "@" else f"{name}.{provider.zone}"
    return RecordSet.build(fqdn, rtype, ttl, values)


def live(provider: Provider, *keys) -> dict:
    return index(provider.records(keys))


def apply(provider: Provider, *changes: Change) -> None:
    receipt = provider.apply(list(changes))
    assert provider.wait(receipt, timeout=60)


class ProviderConformance:
    """Behaviour every provider must show against its real (or documented-local) backend."""

    def seed(self, provider: Provider) -> list[RecordSet]:
        seeds = [
            rs(provider, "www", "A", 3600, "192.0.2.10"),
            rs(provider, "@", "MX", 3600, "10 mail.old-host.net."),
            rs(provider, "mail", "A", 3600, "192.0.2.25"),
        ]
        apply(provider, *(Change(None, s) for s in seeds))
        return seeds

    def test_read_sees_backend_records(self, provider: Provider) -> None:
        records = provider.records()
        types_at_apex = {r.type for r in records if r.name == provider.zone}
        if provider.lists_whole_zone:
            assert "SOA" in types_at_apex or "NS" in types_at_apex
        assert provider.nameservers()

    def test_create_then_read(self, provider: Provider) -> None:
        seeds = self.seed(provider)
        now = live(provider, *(s.key for s in seeds))
        for s in seeds:
            assert now[s.key] == s

    def test_replace_values(self, provider: Provider) -> None:
        www, *_ = self.seed(provider)
        new = rs(provider, "www", "A", 300, "203.0.113.10")
        apply(provider, Change(www, new))
        assert live(provider, www.key)[www.key] == new

    def test_delete(self, provider: Provider) -> None:
        _, _, mail = self.seed(provider)
        apply(provider, Change(mail, None))
        assert mail.key not in live(provider, mail.key)

    def test_ttl_only_change(self, provider: Provider) -> None:
        www, *_ = self.seed(provider)
        lowered = RecordSet(www.name, www.type, 300, www.values)
        apply(provider, Change(www, lowered))
        assert live(provider, www.key)[www.key] == lowered

    def test_multi_value_sets(self, provider: Provider) -> None:
        www, mx, _ = self.seed(provider)
        many_a = rs(provider, "www", "A", 300, "203.0.113.10", "203.0.113.11", "203.0.113.12")
        many_mx = rs(provider, "@", "MX", 300, "10 mail.example.net.", "20 mail2.example.net.")
        aaaa = rs(provider, "www", "AAAA", 300, "2001:db8::10", "2001:db8::11")
        apply(provider, Change(www, many_a), Change(mx, many_mx), Change(None, aaaa))
        now = live(provider, www.key, mx.key, aaaa.key)
        assert now[www.key] == many_a and now[mx.key] == many_mx and now[aaaa.key] == aaaa

    def test_quoting_of_txt_caa_srv(self, provider: Provider) -> None:
        spf = rs(provider, "@", "TXT", 300, '"v=spf1 include:spf.protection.outlook.com -all"', '"hello \\"quoted\\" world"')
        long_txt = rs(provider, "_long", "TXT", 300, '"' + "a" * 255 + '" "' + "b" * 100 + '"')
        caa = rs(provider, "@", "CAA", 300, '0 issue "letsencrypt.org"', '0 iodef "mailto:hostmaster@example.com"')
        srv = rs(provider, "_autodiscover._tcp", "SRV", 300, "0 0 443 autodiscover.outlook.com.")
        cname = rs(provider, "autodiscover", "CNAME", 300, "autodiscover.outlook.com.")
        all_sets = [spf, long_txt, caa, srv, cname]
        apply(provider, *(Change(None, s) for s in all_sets))
        now = live(provider, *(s.key for s in all_sets))
        for s in all_sets:
            assert now[s.key] == s

    def test_reapply_is_idempotent(self, provider: Provider) -> None:
        seeds = self.seed(provider)
        before = live(provider, *(s.key for s in seeds))
        again = [Change(before[s.key], s) for s in seeds if before[s.key] != s]
        assert again == []
        assert live(provider, *(s.key for s in seeds)) == before

    def test_failed_apply_leaves_zone_unchanged(self, provider: Provider) -> None:
        www, mx, mail = self.seed(provider)
        stale = RecordSet(mail.name, mail.type, mail.ttl, ("198.51.100.99",))  # not what is live
        good = Change(www, rs(provider, "www", "A", 300, "203.0.113.10"))
        with pytest.raises(DriftError) as refused:  # a refusal, not a failure: exit 2 like the drift guard
            provider.apply([good, Change(stale, rs(provider, "mail", "A", 300, "203.0.113.25"))])
        assert refused.value.exit_code == 2
        now = live(provider, www.key, mx.key, mail.key)
        assert now[www.key] == www and now[mail.key] == mail and now[mx.key] == mx

    def test_unmanaged_records_untouched(self, provider: Provider) -> None:
        www, mx, mail = self.seed(provider)
        apply(provider, Change(www, rs(provider, "www", "A", 300, "203.0.113.10")))
        now = live(provider, mx.key, mail.key)
        assert now[mx.key] == mx and now[mail.key] == mail

    def test_unsupported_type_is_refused_before_sending(self, provider: Provider) -> None:
        """A type the backend lacks is an ``UnsupportedChange`` (exit 2), like the plan problem
        it would have been, and nothing of the apply lands."""
        if provider.supported_types is None:
            pytest.skip("this backend takes any record type")
        www, mx, mail = self.seed(provider)
        rtype = next(t for t in UNCOMMON if t not in provider.supported_types)
        odd = rs(provider, "odd", rtype, 300, UNCOMMON[rtype])
        with pytest.raises(UnsupportedChange) as refused:
            provider.apply([Change(www, rs(provider, "www", "A", 300, "203.0.113.10")), Change(None, odd)])
        assert refused.value.exit_code == 2 and rtype in str(refused.value)
        now = live(provider, www.key, odd.key)
        assert now[www.key] == www and odd.key not in now
