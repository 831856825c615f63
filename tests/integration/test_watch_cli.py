"""``cutover watch`` as an operator runs it when things are not tidy: the DNS host down
right after a change, a second watch started on the same state by mistake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.integration.servers.bind import BindZone, bind_server  # noqa: F401 (fixture)
from tests.integration.servers.unbound import unbound_server  # noqa: F401 (fixture)
from tests.integration.test_scenarios import NEW, OLD, ZONE, Operator


def test_watch_keeps_observing_while_the_dns_host_is_down(tmp_path, bind_server, unbound_server):
    bind = bind_server(BindZone(ZONE, records=(f"www 1 IN A {OLD}",)))
    resolver = unbound_server(ZONE, bind.port)
    op = Operator(tmp_path, bind, [resolver], [{"name": "www", "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]}])
    op("apply", "--yes")
    bind.stop()
    result = op("watch", "--once", "--format", "json", expect=1)  # not yet, rather than "provider failure"
    doc = json.loads(result.stdout)
    assert "could not be read" in result.stderr and "watching what the journal knows" in result.stderr
    assert doc["authoritative"]["all_new"] is False
    assert [s["state"] for s in doc["authoritative"]["servers"]] == ["unreachable"]
    assert "authoritative" in doc["verdict"]["missing"]
    www = doc["records"][0]
    assert (www["new"], www["old"]) == ([NEW], [OLD])  # the targets come from the journal


def test_a_second_watch_on_the_same_state_is_refused(tmp_path, bind_server, unbound_server):
    bind = bind_server(BindZone(ZONE, records=(f"www 1 IN A {OLD}",)))
    resolver = unbound_server(ZONE, bind.port)
    op = Operator(tmp_path, bind, [resolver], [{"name": "www", "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]}],
                  retire={"parallel_period": "1h"})
    op("apply", "--yes")
    env = {**os.environ, "ACME_TSIG": bind.key_secret}
    first = subprocess.Popen([sys.executable, "-m", "cutover", "watch", str(op.plan), "--format", "json"],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert first.stdout is not None and json.loads(first.stdout.readline())["round"] == 1
        second = op("watch", "--once", expect=2)
        assert "another `cutover watch` is watching these zones" in second.stderr
        rolled = op("rollback", "--yes")  # the watch does not keep an operator from acting
        assert "rollback verified" in rolled.stdout
    finally:
        first.terminate()
        first.wait(timeout=10)
    time.sleep(0.2)
    assert op("watch", "--once", expect=None).returncode in (0, 1)  # the lock went with the process
