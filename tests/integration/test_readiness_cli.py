"""``cutover check``, the ``readiness`` guard of ``apply`` and the old-MX check of ``watch``,
end to end: real BIND for the zone, real nginx for the new web server, real Postfix for
the new and the old mail servers, all on loopback.

The plan moves www to 127.0.0.1 (nginx) and mail from ``mail`` (Postfix on 127.0.0.2) to
``mx`` (Postfix on 127.0.0.1); the same port serves both mail servers, as port 25 would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trustme

from tests.integration.servers.bind import BindZone, bind_server  # noqa: F401 (fixture)
from tests.integration.servers.nginx import NginxSite, nginx_server  # noqa: F401 (fixture)
from tests.integration.servers.postfix import PostfixSetup, postfix_server, tls_files  # noqa: F401 (fixture)
from tests.integration.servers.unbound import unbound_server  # noqa: F401 (fixture)
from tests.integration.test_scenarios import OLD, ZONE, Operator

pytestmark = pytest.mark.integration

DOMAIN = ZONE.rstrip(".")
MX, OLD_MX = f"mx.{DOMAIN}", f"mail.{DOMAIN}"


def world(tmp_path: Path, bind_server, unbound_server, nginx_server, postfix_server, *, accepts: bool = True,
          web: NginxSite | None = None):
    """The zone on its old servers, the new web and mail servers ready (or not), and a plan."""
    ca = trustme.CA()
    site = nginx_server(web or NginxSite(f"www.{DOMAIN}"))
    new = postfix_server(PostfixSetup(domains=(DOMAIN if accepts else "elsewhere.test",), hostname=MX,
                                      tls=tls_files(ca, tmp_path, MX)))
    old = postfix_server(PostfixSetup(domains=(DOMAIN,), hostname=OLD_MX, tls=tls_files(ca, tmp_path, OLD_MX),
                                      address="127.0.0.2", port=new.port))
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    bundle.write_text(bundle.read_text() + Path(site.ca_file).read_text())
    bind = bind_server(BindZone(ZONE, records=(f"www 1 IN A {OLD}", "mail 1 IN A 127.0.0.2", "@ 1 IN MX 10 mail")))
    resolver = unbound_server(ZONE, bind.port)
    op = Operator(tmp_path, bind, [resolver], [
        {"name": "www", "type": "A", "ttl": 1, "from": [OLD], "to": ["127.0.0.1"]},
        {"name": "mx", "type": "A", "ttl": 1, "to": ["127.0.0.1"]},
        {"name": "@", "type": "MX", "ttl": 1, "from": ["10 mail"], "to": ["10 mx"]},
    ], ready={"web": {"ports": {"http": site.http_port, "https": site.https_port}},
              "mail": {"port": new.port}, "ca_file": str(bundle), "old": {"every": "1s"}, "timeout": "5s"},
        retire={"threshold": "100%", "parallel_period": "1h"})
    return op, new, old


def checks(doc: dict) -> dict[tuple[str, str], dict]:
    (plan,) = doc["plans"]
    return {(c["check"], c["name"]): c for c in plan["checks"]}


def test_check_says_ready_when_the_new_web_and_mail_servers_are(tmp_path, bind_server, unbound_server, nginx_server,
                                                                 postfix_server):
    op, new, _old = world(tmp_path, bind_server, unbound_server, nginx_server, postfix_server)
    doc = json.loads(op("check", "--format", "json").stdout)
    found = checks(doc)
    assert doc["plans"][0]["zone"] == ZONE and doc["plans"][0]["ready"] is True
    assert {k: c["ok"] for k, c in found.items() if k[1] in (f"www.{DOMAIN}", MX)} == {
        ("http", f"www.{DOMAIN}"): True, ("https", f"www.{DOMAIN}"): True, ("certificate", f"www.{DOMAIN}"): True,
        ("smtp", MX): True, ("starttls", MX): True, ("rcpt", MX): True}
    assert found[("rcpt", MX)]["target"] == f"127.0.0.1:{new.port}"
    assert found[("rcpt", MX)]["detail"] == f"RCPT TO:<postmaster@{DOMAIN}>: 250 2.1.5 Ok"
    assert set(doc["plans"][0]["checks"][0]) == {"check", "target", "name", "ok", "state", "detail"}
    text = op("check").stdout
    assert f"{ZONE} ({op.plan}): ready" in text and "rcpt" in text and "certificate" in text


def test_a_server_refusing_the_domain_is_not_ready_and_apply_refuses_until_forced(
        tmp_path, bind_server, unbound_server, nginx_server, postfix_server):
    op, _new, _old = world(tmp_path, bind_server, unbound_server, nginx_server, postfix_server, accepts=False,
                           web=NginxSite(f"www.{DOMAIN}", cert_names=("shop.example.net",)))
    result = op("check", "--format", "json", expect=1)
    found = checks(json.loads(result.stdout))
    assert found[("rcpt", MX)]["state"] == "failed" and "refuses mail for this domain" in found[("rcpt", MX)]["detail"]
    assert found[("certificate", f"www.{DOMAIN}")]["ok"] is False and "shop.example.net" in found[("certificate", f"www.{DOMAIN}")]["detail"]
    assert "NOT READY" in op("check", expect=1).stdout
    diff = op("diff", "--check", expect=2)
    assert "readiness: rcpt" in diff.stdout
    refused = op("apply", "--yes", expect=2)
    assert "readiness: rcpt mx." in refused.stderr and "readiness: certificate www." in refused.stderr
    assert "--force readiness" in refused.stderr and "Traceback" not in refused.stderr
    assert op.status()["runs"] == []  # nothing was changed, nothing journalled as applied
    op("apply", "--yes", "--force", "readiness")
    (run,) = op.status()["runs"]
    assert run["status"] == "verified" and "readiness: rcpt mx." in run["forced"]


def test_watch_asks_the_old_mx_during_the_parallel_period_and_says_loudly_when_it_stops(
        tmp_path, bind_server, unbound_server, nginx_server, postfix_server):
    op, _new, old = world(tmp_path, bind_server, unbound_server, nginx_server, postfix_server)
    op("apply", "--yes")
    (doc,) = op.rounds("--once", expect=1)
    assert doc["old_mail"]["accepting"] is True and doc["old_mail"]["hosts"] == [OLD_MX]
    (check,) = doc["old_mail"]["checks"]
    assert (check["check"], check["target"], check["state"]) == ("old-mx", f"127.0.0.2:{old.port}", "ok")
    old.stop()  # the old server switched off too early
    import time
    time.sleep(1.2)  # ready.old.every is 1s
    (doc,) = op.rounds("--once", expect=1)
    assert doc["old_mail"]["accepting"] is False
    assert doc["old_mail"]["message"].startswith(f"the old mail server {OLD_MX} (127.0.0.2:{old.port}) no longer accepts mail")
    status = op("status").stdout
    assert "OLD MX REFUSES MAIL" in status
    assert op.status()["last_round"]["old_mail"]["accepting"] is False
