"""The lexicon provider through dns-lexicon's own ``powerdns`` provider, against a real
pdns_server (the same fixture the dedicated powerdns provider is tested with)."""

from __future__ import annotations

import pytest

from cutover.errors import PartialApplyError, ProviderError, UsageError
from cutover.records import Change
from providers.lexicon import LexiconProvider, presentation
from tests.integration.conformance import ProviderConformance, apply, live, rs
from tests.integration.servers.pdns import PdnsServer, pdns_server, pdns_zone  # noqa: F401

pytestmark = pytest.mark.integration

import lexicon  # noqa: E402,F401  - in the test extra: a missing install must fail, not skip


def settings(server: PdnsServer, **options: str) -> dict:
    return {"provider_name": "powerdns",
            "options": {"pdns_server": server.api_url, "auth_token": server.api_key, "pdns_server_id": "localhost", **options}}


@pytest.fixture
def provider(pdns_server: PdnsServer, pdns_zone: str):  # noqa: F811
    p = LexiconProvider(pdns_zone, settings(pdns_server))
    yield p
    p.close()


class TestLexiconPowerDNS(ProviderConformance):
    def test_quoting_of_txt_caa_srv(self, provider: LexiconProvider) -> None:
        """The suite's test, with the CNAME target inside the zone: lexicon's PowerDNS
        provider appends the zone to every CNAME target outside it (see the next test)."""
        spf = rs(provider, "@", "TXT", 300, '"v=spf1 include:spf.protection.outlook.com -all"', '"hello \\"quoted\\" world"')
        long_txt = rs(provider, "_long", "TXT", 300, '"' + "a" * 255 + '" "' + "b" * 100 + '"')
        caa = rs(provider, "@", "CAA", 300, '0 issue "letsencrypt.org"', '0 iodef "mailto:hostmaster@example.com"')
        srv = rs(provider, "_autodiscover._tcp", "SRV", 300, "0 0 443 autodiscover.outlook.com.")
        cname = rs(provider, "autodiscover", "CNAME", 300, f"mail.{provider.zone}")
        all_sets = [spf, long_txt, caa, srv, cname]
        apply(provider, *(Change(None, s) for s in all_sets))
        now = live(provider, *(s.key for s in all_sets))
        for s in all_sets:
            assert now[s.key] == s


def test_a_value_lexicon_mangles_is_caught_by_the_read_back(provider: LexiconProvider) -> None:
    www = rs(provider, "www", "A", 300, "192.0.2.10")
    outside = rs(provider, "autodiscover", "CNAME", 300, "autodiscover.outlook.com.")
    with pytest.raises(PartialApplyError, match=r"autodiscover\..* CNAME the zone holds .*autodiscover\.outlook\.com\.z.*not .*'autodiscover\.outlook\.com\.'") as err:
        provider.apply([Change(None, www), Change(None, outside)])
    assert err.value.landed == [www.key]


def test_failure_half_way_names_exactly_what_landed(provider: LexiconProvider, pdns_server: PdnsServer) -> None:  # noqa: F811
    www, mx, mail = ProviderConformance().seed(provider)
    first = Change(None, rs(provider, "ftp", "A", 300, "203.0.113.20", "203.0.113.21"))
    second = Change(www, rs(provider, "www", "A", 300, "203.0.113.10"))
    clash = Change(None, rs(provider, "mail", "CNAME", 300, f"www.{provider.zone}"))  # PowerDNS refuses: mail has an A
    never = Change(mx, rs(provider, "@", "MX", 300, "10 mail.example.net."))
    with pytest.raises(PartialApplyError, match=r"422.*landed ftp\..* A, www\..* A") as err:
        provider.apply([first, second, clash, never])
    assert err.value.landed == [first.key, second.key]
    assert pdns_server.api_key not in str(err.value)
    now = live(provider, first.key, www.key, mail.key, mx.key, clash.key)
    assert now[first.key] == first.after and now[www.key] == second.after
    assert now[mail.key] == mail and now[mx.key] == mx and clash.key not in now


def test_failure_of_the_first_call_is_not_partial(provider: LexiconProvider) -> None:
    www, mx, mail = ProviderConformance().seed(provider)
    clash = Change(None, rs(provider, "mail", "CNAME", 300, f"www.{provider.zone}"))
    with pytest.raises(ProviderError, match="nothing was changed") as err:
        provider.apply([clash, Change(www, None)])
    assert not isinstance(err.value, PartialApplyError)
    assert www.key in live(provider, www.key)


def test_ttl_of_a_multi_value_set_changes(provider: LexiconProvider) -> None:
    many = rs(provider, "www", "A", 3600, "192.0.2.10", "192.0.2.11")
    apply(provider, Change(None, many))
    lowered = rs(provider, "www", "A", 120, "192.0.2.10", "192.0.2.11", "192.0.2.12")
    apply(provider, Change(many, lowered))
    assert live(provider, many.key)[many.key] == lowered


def test_wrong_token_is_a_provider_error_without_the_token(pdns_server: PdnsServer, pdns_zone: str) -> None:  # noqa: F811
    p = LexiconProvider(pdns_zone, settings(pdns_server, auth_token="not-the-key-0123456789"))
    with pytest.raises(ProviderError, match="lexicon powerdns: authenticate with failed: HTTPError: 401") as err:
        p.records()
    assert "not-the-key-0123456789" not in str(err.value) and "not-the-key" not in repr(p)


def test_settings_are_checked() -> None:
    assert LexiconProvider.check_settings({"provider_name": "powerdns", "options": {}}) == []
    assert LexiconProvider.check_settings({"provider_name": "no-such-dns", "options": []}) == [
        ("provider_name", "'no-such-dns' is not a lexicon provider"),
        ("options", "is not a mapping of the lexicon provider's options"),
    ]


def test_missing_lexicon_names_the_extra(monkeypatch: pytest.MonkeyPatch, pdns_zone: str) -> None:  # noqa: F811
    import sys

    monkeypatch.setitem(sys.modules, "lexicon.config", None)  # as if dns-lexicon were not installed
    with pytest.raises(UsageError, match=r"pip install 'cutover\[lexicon\]'"):
        LexiconProvider(pdns_zone, {"provider_name": "powerdns"})
    assert LexiconProvider.check_settings({"provider_name": "powerdns"})[0][1].endswith("pip install 'cutover[lexicon]'")


def test_txt_content_is_quoted_again() -> None:
    assert presentation("TXT", 'a" "b') == '"a" "b"'
    assert presentation("TXT", '"already"') == '"already"'
    assert presentation("CNAME", "target.example.net") == "target.example.net."
