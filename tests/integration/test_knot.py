"""The rfc2136 provider against a real Knot DNS on loopback, with both kinds of key.

Knot refuses a transfer the key may not make with NOTAUTH/BADKEY, the answer it gives
a key it does not know. The provider must read by query then (as the README
promises when AXFR is refused), and still report a key that is really wrong.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest
import yaml

from cutover.records import Change, RecordSet, index
from providers.dnsquery import KeyRejected
from providers.rfc2136 import RFC2136Provider
from tests.integration.conformance import ProviderConformance, rs
from tests.integration.servers.knot import KnotServer, KnotZone, knot_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

ZONE = "conformance.test."


class TestKnotConformanceWithTransferKey(ProviderConformance):
    """The shared suite with a key that may transfer: every read is a zone transfer."""

    @pytest.fixture
    def provider(self, knot_server):
        p = RFC2136Provider(ZONE, knot_server(KnotZone(ZONE)).settings("transfer"))
        yield p
        assert p.read_mode in (None, "axfr"), p.fallback_reason
        p.close()


class TestKnotConformanceWithUpdateOnlyKey(ProviderConformance):
    """The shared suite with a key that may only update: every read is by query."""

    @pytest.fixture
    def provider(self, knot_server):
        p = RFC2136Provider(ZONE, knot_server(KnotZone(ZONE)).settings("update"))
        yield p
        assert p.read_mode in (None, "query")
        p.close()


@pytest.fixture
def server(knot_server) -> KnotServer:
    return knot_server(KnotZone(ZONE, records=("www 3600 IN A 192.0.2.10",)))


def test_transfer_key_reads_the_whole_zone(server):
    p = RFC2136Provider(ZONE, server.settings("transfer"))
    found = index(p.records())
    assert p.read_mode == "axfr" and p.lists_whole_zone
    assert {(ZONE, "SOA"), (ZONE, "NS"), (f"ns1.{ZONE}", "A"), (f"www.{ZONE}", "A")} <= set(found)


def test_update_only_key_reads_by_query_and_says_why(server):
    p = RFC2136Provider(ZONE, server.settings("update"))
    found = p.records([(f"www.{ZONE}", "A"), (f"nothing.{ZONE}", "A")])
    assert found == [RecordSet.build(f"www.{ZONE}", "A", 3600, ["192.0.2.10"])]
    assert p.read_mode == "query" and p.lists_whole_zone is False
    assert p.fallback_reason == (
        f"{server.endpoint} refused the transfer of {ZONE} to TSIG key update-key. (NOTAUTH/BADKEY) yet accepts "
        "the key for queries: the key is not allowed to transfer the zone, so the managed names are read by query")
    assert "does not know a key" not in p.fallback_reason


def test_update_only_key_changes_the_zone(server):
    p = RFC2136Provider(ZONE, server.settings("update"))
    www = index(p.records([(f"www.{ZONE}", "A")]))[(f"www.{ZONE}", "A")]
    p.apply([Change(www, rs(p, "www", "A", 300, "203.0.113.10"))])
    assert server.values(f"www.{ZONE}", "A") == {"203.0.113.10"}


def test_unknown_key_is_still_an_error_not_a_fallback(server):
    p = RFC2136Provider(ZONE, server.settings("update", tsig_name="nobody-knows-me."))
    with pytest.raises(KeyRejected, match=r"nobody-knows-me\..*BADKEY"):
        p.records([(f"www.{ZONE}", "A")])
    assert p.read_mode is None


def test_wrong_secret_is_reported_as_a_bad_signature(server):
    """Knot answers the transfer with BADKEY even here; the query says what is wrong."""
    wrong = base64.b64encode(b"not-the-key-" * 3).decode()
    p = RFC2136Provider(ZONE, server.settings("update", tsig_secret=wrong))
    with pytest.raises(KeyRejected, match="BADSIG") as err:
        p.records([(f"www.{ZONE}", "A")])
    assert wrong not in str(err.value) and server.secrets["update"] not in str(err.value)


@pytest.mark.parametrize("kind", ["transfer", "update"])
def test_cli_apply_with_either_key(server, tmp_path, kind):
    """What the issue saw: every command exited 3 with the update-only key."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "zone": ZONE,
        "provider": {"type": "rfc2136", **server.settings(kind)},
        "records": [{"name": "www", "type": "A", "ttl": 300, "from": ["192.0.2.10"], "to": ["203.0.113.10"]}],
        "verify": {"nameservers": [server.endpoint], "timeout": "5s"},
    }))
    cutover = [sys.executable, "-m", "cutover"]
    diff = subprocess.run([*cutover, "diff", str(plan)], capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert diff.returncode == 1, diff.stdout + diff.stderr
    applied = subprocess.run([*cutover, "apply", str(plan), "--yes", "--force"], capture_output=True, text=True,
                             timeout=60, env=dict(os.environ))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "apply verified" in applied.stdout
    assert server.values(f"www.{ZONE}", "A") == {"203.0.113.10"}
