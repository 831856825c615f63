"""Webhook notifications: which events, what is posted, retries, and never blocking the rounds.

Delivery is tested against a real HTTP server on loopback (``Hook``) that records each
request and answers from a script (500s, 429 with Retry-After, a 404), plus a
"blackhole" that accepts connections and never answers.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from cutover import cli, monitor
from cutover import plan as planmod
from cutover.errors import UsageError
from cutover.journal import Journal
from cutover.notify import (
    Notifier,
    Policy,
    check_url,
    error_event,
    redact,
    retry_after,
    round_events,
)
from cutover.observe.types import Target
from tests.integration.servers import free_port

SECRET = "T000/B000/Xsecret-token-XXXX"
FAST = Policy(attempts=4, backoff=0.05, max_delay=2.0, timeout=2.0)


# ------------------------------------------------------------------ a webhook on loopback


class Hook:
    """A webhook receiver: records every POST; answers each path from a script, then 200."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: dict[str, list[tuple[int, dict]]] = {}
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook.lock:
                    hook.requests.append({"time": time.monotonic(), "path": self.path,
                                          "type": self.headers.get("Content-Type"), "body": json.loads(body)})
                    steps = hook.script.get(self.path) or []
                    status, headers = steps.pop(0) if steps else (200, {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = f"/services/{SECRET}") -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def texts(self, path: str | None = None) -> list[str]:
        with self.lock:
            return [r["body"]["text"] for r in self.requests if path is None or r["path"] == path]

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def blackhole():
    """Accepts TCP connections and never answers: the worst kind of dead webhook."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", free_port()))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/{SECRET}"
    stop.set()
    t.join()
    for s in held:
        s.close()
    sock.close()


class Log(list):
    def __call__(self, message: str) -> None:
        self.append(message)


# ------------------------------------------------------------------ events


def doc(number: int, records: list[tuple[str, int, int, list[str]]], *, retire: bool = False,
        threshold: float = 0.75, zone: str = "example.test.") -> dict:
    """A round document with only the keys events read: (name, new, answering, stale resolvers)."""
    recs = []
    for name, new, answering, stale in records:
        answers = [{"resolver": r, "address": f"192.0.2.{i + 1}", "state": "old", "ttl": 3000, "stale": True}
                   for i, r in enumerate(stale)]
        recs.append({"name": name, "type": "A", "share": new / answering if answering else 0.0, "answering": answering,
                     "counts": {"new": new, "old": answering - new, "other": 0, "error": 0}, "answers": answers})
    return {"round": number, "time": f"2024-01-01T00:00:{number:02d}Z", "zone": zone, "records": recs,
            "verdict": {"retire": retire, "threshold": threshold, "missing": [] if retire else ["ttl"]}}


def kinds(events) -> list[str]:
    return [e.kind for e in events]


def test_threshold_announced_when_reached_and_again_after_a_fall():
    r1 = doc(1, [("www", 1, 4, []), ("mail", 3, 4, [])])
    r2 = doc(2, [("www", 3, 4, []), ("mail", 3, 4, [])])
    r3 = doc(3, [("www", 2, 3, []), ("mail", 4, 4, [])])
    r4 = doc(4, [("www", 4, 4, []), ("mail", 4, 4, [])])
    first = round_events(None, r1)
    assert kinds(first) == ["threshold"] and first[0].subjects == ("mail A",)
    assert first[0].text == "example.test.: reached the 75% threshold: mail A (3 of 4 answering resolvers new, 75%)"
    assert [e.subjects for e in round_events(r1, r2)] == [("www A",)]
    assert round_events(r2, r3) == []  # falling below is not news to push
    assert [e.subjects for e in round_events(r3, r4)] == [("www A",)]


def test_nobody_answering_is_not_reaching_the_threshold():
    assert round_events(None, doc(1, [("www", 0, 0, [])], threshold=0.0)) == []


def test_stale_resolvers_announced_once_each():
    r1 = doc(1, [("www", 3, 4, ["stuck"])])
    r2 = doc(2, [("www", 3, 4, ["stuck"])])
    r3 = doc(3, [("www", 2, 4, ["stuck", "clamp"])])
    e1 = [e for e in round_events(None, r1) if e.kind == "stale"]
    assert e1[0].text == "example.test.: resolver still gives the old data after the old TTL expired: stuck (www A, TTL 3000)"
    assert [e for e in round_events(r1, r2) if e.kind == "stale"] == []
    e3 = round_events(r2, r3)
    assert kinds(e3) == ["stale"] and "clamp (www A" in e3[0].text and "stuck" not in e3[0].text


def test_verdict_announced_once():
    r1 = doc(1, [("www", 4, 4, [])])
    r2 = doc(2, [("www", 4, 4, [])], retire=True)
    r3 = doc(3, [("www", 4, 4, [])], retire=True)
    assert kinds(round_events(r1, r2)) == ["verdict"]
    assert round_events(r2, r3) == []
    assert kinds(round_events(None, r3)) == ["threshold", "verdict"]


def test_payload_is_slack_and_teams_text_with_outside_names_escaped():
    event = round_events(None, doc(1, [("www", 3, 4, ["<!channel> & <https://evil|x>"])]))[-1]
    payload = event.payload()
    assert list(payload) == ["text"]
    assert "&lt;!channel&gt; &amp; &lt;https://evil|x&gt;" in payload["text"] and "<" not in payload["text"]
    assert error_event(["a.test."], "boom").text == "cutover watch stopped on an error (a.test.): boom"


# ------------------------------------------------------------------ URLs


def test_urls_are_shown_without_path_or_credentials():
    assert redact(f"https://hooks.slack.com/services/{SECRET}") == "https://hooks.slack.com/…"
    assert redact("https://user:pa55w0rd@example.webhook.office.com:8443/x?t=1") == "https://example.webhook.office.com:8443/…"
    assert redact(f"https://user:{SECRET}@host.example/x") == "https://user/…"  # the '/' ends the host part
    assert redact("http://[::1]:9000/a/b") == "http://[::1]:9000/…"
    assert check_url("https://h.example/x") == "https://h.example/x"
    for bad in (f"ftp://files.example/{SECRET}", f"hooks.slack.com/services/{SECRET}", f"http://h:99999/{SECRET}"):
        with pytest.raises(UsageError) as info:
            check_url(bad)
        assert SECRET not in str(info.value) and "--notify" in str(info.value)


def test_retry_after_seconds_and_dates():
    assert retry_after("3") == 3.0
    assert retry_after(formatdate(1000.0 + 7, usegmt=True), now=1000.0) == pytest.approx(7.0)
    assert retry_after(formatdate(900.0, usegmt=True), now=1000.0) == 0.0
    assert retry_after("soon") is None and retry_after(None) is None


# ------------------------------------------------------------------ delivery


def test_messages_delivered_as_json_text(hook):
    notifier = Notifier([hook.url()], FAST, log=Log())
    notifier.observe(doc(1, [("www", 4, 4, ["stuck"])], retire=True))
    notifier.observe(doc(2, [("www", 4, 4, ["stuck"])], retire=True))  # nothing new
    notifier.error(["example.test."], "journal write failed")
    notifier.close(wait=5)
    texts = hook.texts()
    assert [t.split(":")[0] for t in texts[:3]] == ["example.test."] * 3
    assert "reached the 75% threshold" in texts[0] and "stuck (www A, TTL 3000)" in texts[1]
    assert "retire verdict reached" in texts[2]
    assert texts[3] == "cutover watch stopped on an error (example.test.): journal write failed"
    assert len(texts) == 4 and hook.requests[0]["type"] == "application/json"
    assert notifier.stats[redact(hook.url())] == {"delivered": 4, "failed": 0, "dropped": 0}


def test_retries_after_server_errors(hook):
    hook.script[f"/services/{SECRET}"] = [(500, {}), (502, {})]
    log = Log()
    notifier = Notifier([hook.url()], FAST, log=log)
    notifier.send(error_event(["example.test."], "x"))
    notifier.close(wait=5)
    assert len(hook.requests) == 3 and log == []
    gaps = [b["time"] - a["time"] for a, b in zip(hook.requests, hook.requests[1:])]
    assert gaps[0] >= 0.04 and gaps[1] >= 0.09  # 0.05 then 0.1: exponential


def test_429_waits_as_long_as_retry_after_says(hook):
    hook.script[f"/services/{SECRET}"] = [(429, {"Retry-After": "1"})]
    notifier = Notifier([hook.url()], FAST, log=Log())
    notifier.send(error_event(["example.test."], "x"))
    notifier.close(wait=5)
    assert len(hook.requests) == 2
    assert hook.requests[1]["time"] - hook.requests[0]["time"] >= 0.95


def test_gives_up_after_the_last_attempt_and_says_so_without_the_url(hook):
    hook.script[f"/services/{SECRET}"] = [(503, {})] * 10
    hook.script[f"/gone/{SECRET}"] = [(404, {})]
    log = Log()
    notifier = Notifier([hook.url(), hook.url(f"/gone/{SECRET}")], Policy(attempts=3, backoff=0.01), log=log)
    notifier.send(error_event(["example.test."], "x"))
    notifier.close(wait=5)
    assert len(hook.texts(f"/services/{SECRET}")) == 3 and len(hook.texts(f"/gone/{SECRET}")) == 1
    shown = f"http://127.0.0.1:{hook.server.server_port}/…"
    assert f"notify {shown}: gave up on the error message after 3 attempt(s) (HTTP 503)" in log
    assert f"notify {shown}: the error message was refused (HTTP 404); not retried" in log
    assert not any(SECRET in line for line in log) and SECRET not in repr(notifier)


def test_a_dead_webhook_never_slows_the_rounds_nor_the_other_webhook(hook, blackhole):
    refused = f"http://127.0.0.1:{free_port()}/hooks/{SECRET}"
    log = Log()
    notifier = Notifier([blackhole, refused, hook.url()], Policy(attempts=5, backoff=0.2, timeout=3.0), log=log)
    started = time.monotonic()
    for n in range(1, 30):
        notifier.observe(doc(n, [("www", n % 2 * 4, 4, [f"r{n}"])], retire=n % 2 == 1))
    assert time.monotonic() - started < 0.2  # observing only queues
    hook.wait_for(1, timeout=3)
    assert hook.requests and hook.requests[0]["time"] - started < 1.0  # not stuck behind the dead ones
    closing = time.monotonic()
    notifier.close(wait=0.5)
    assert time.monotonic() - closing < 1.5
    assert any("not sent" in line or "gave up" in line or "still busy" in line for line in log)
    assert not any(SECRET in line for line in log)


# ------------------------------------------------------------------ the CLI's part


def manual_plan(tmp_path) -> planmod.Plan:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump({
        "version": 1, "zone": "example.test.", "provider": {"type": "manual"},
        "records": [{"name": "www", "type": "A", "from": ["198.51.100.10"], "to": ["203.0.113.10"]}],
    }))
    return planmod.load(path)


def test_cli_refuses_a_bad_notify_url_before_anything_and_hides_it(tmp_path, capsys):
    plan = manual_plan(tmp_path)
    assert cli.main(["watch", str(plan.path), "--once", "--notify", f"hooks.example/{SECRET}"]) == 2
    captured = capsys.readouterr()
    assert "--notify" in captured.err and SECRET not in captured.err + captured.out
    assert not (tmp_path / ".cutover").exists()  # refused before the journal or provider was touched


def test_watch_loop_posts_when_the_watch_dies(tmp_path, hook, capsys):
    plan = manual_plan(tmp_path)
    journal = Journal(tmp_path / ".cutover")
    setup = monitor.Setup(plan, (Target(("www.example.test.", "A"), ("203.0.113.10",), ("198.51.100.10",), 60),),
                          (), None, "test")
    journal.db.close()  # the next journal write fails, as a full disk would make it
    notifier = Notifier([hook.url()], FAST, log=Log())
    with pytest.raises(sqlite3.ProgrammingError):
        cli.watch_loop([(setup, journal)], cli.Output(json=True), once=True, notifier=notifier)
    texts = hook.texts()  # watch_loop flushed the queue before returning
    assert len(texts) == 1 and texts[0].startswith("cutover watch stopped on an error (example.test.): ")


def test_a_bare_word_is_refused_without_echoing_it():
    with pytest.raises(UsageError) as info:
        check_url("xoxb-1234-secret")
    assert "xoxb" not in str(info.value) and "?://" not in str(info.value)
    assert "is not an http:// or https:// webhook URL" in str(info.value)
