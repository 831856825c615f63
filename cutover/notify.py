"""Webhook notifications for ``cutover watch --notify URL``.

An operator does not sit in front of a week-long watch; they want a message in the
team channel when something changes: a record reaches the threshold, a resolver is
caught serving the old data after every honest cache must have dropped it, the retire
verdict is reached, or the watch stopped on an error.

Two halves, kept apart on purpose:

* ``round_events(previous, current)`` is a pure function of two consecutive round
  documents (``watch.round_document``), so what is announced is decided by the same
  facts the journal keeps, and the report's timeline reuses it.
* ``Notifier`` delivers. Each URL has its own thread and queue, so a dead or slow
  webhook never delays the rounds nor another webhook; failures are retried with
  exponential backoff (``Retry-After`` honoured), bounded, and then reported on stderr.

Webhook URLs are secrets (a Slack URL *is* its token), so they are only ever shown
as ``scheme://host/…`` -- in messages, logs and ``repr``.
"""

from __future__ import annotations

import email.utils
import queue
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

import requests

from cutover.errors import UsageError
from cutover.observe.types import RecordSummary



# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    """Something worth telling people about, with the words to tell it."""

    kind: str
    zone: str
    text: str
    time: str | None = None
    round: int | None = None
    subjects: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "zone": self.zone, "text": self.text, "time": self.time,
                "round": self.round, "subjects": list(self.subjects)}

    def payload(self) -> dict[str, str]:
        """The webhook body: a ``text`` field is what Slack and Teams incoming webhooks both take."""
        return {"text": slack_escape(self.text)}


def slack_escape(text: str) -> str:
    """Slack reads ``<...>`` as links and mentions (``<!channel>``); names from outside must not."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def record_label(rec: Mapping[str, Any]) -> str:
    return f"{rec['name']} {rec['type']}"


def answering(rec: Mapping[str, Any]) -> int:
    return RecordSummary.from_record(rec).answering


def threshold_of(doc: Mapping[str, Any]) -> float:
    value = (doc.get("verdict") or {}).get("threshold")
    return 1.0 if value is None else float(value)


def reached(rec: Mapping[str, Any], threshold: float) -> bool:
    """A round document's record at the threshold (the rule is ``RecordSummary.reached``).
    Records no resolver is asked about (an NS set) have no share to reach."""
    return bool(rec.get("resolvers_asked", True)) and RecordSummary.from_record(rec).reached(threshold)


def stale_answers(doc: Mapping[str, Any]) -> dict[tuple[str, str, str], tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(resolver address, name, type) -> (record, answer) for every answer flagged stale."""
    out = {}
    for rec in doc.get("records", []):
        for ans in rec.get("answers", []):
            if ans.get("stale"):
                out[(str(ans.get("address") or ans.get("resolver")), rec["name"], rec["type"])] = (rec, ans)
    return out


def _pct(share: float) -> str:
    text = f"{share * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


def round_events(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[Event]:
    """What changed between two consecutive rounds of one zone that people should hear about.

    ``previous`` is ``None`` for the first round ever watched, so whatever already holds
    then is announced once. A record that falls back below the threshold and reaches it
    again is announced again; a resolver already known to be stale is not.
    """
    zone = str(current.get("zone", ""))
    when, number = current.get("time"), current.get("round")
    threshold = threshold_of(current)
    events: list[Event] = []

    before = {(r["name"], r["type"]) for r in (previous or {}).get("records", []) if reached(r, threshold_of(previous or {}))}
    now_reached = [rec for rec in current.get("records", [])
                   if (rec["name"], rec["type"]) not in before and reached(rec, threshold)]
    if now_reached:
        parts = [f"{record_label(rec)} ({rec.get('counts', {}).get('new', 0)} of {answering(rec)} answering resolvers new, "
                 f"{_pct(float(rec['share']))})" for rec in now_reached]
        text = f"{zone}: reached the {_pct(threshold)} threshold: {'; '.join(parts)}"
        events.append(Event("threshold", zone, text, when, number, tuple(record_label(r) for r in now_reached)))

    known = set(stale_answers(previous)) if previous else set()
    fresh = [(key, pair) for key, pair in stale_answers(current).items() if key not in known]
    if fresh:
        parts = [f"{ans.get('resolver') or key[0]} ({record_label(rec)}, TTL {ans.get('ttl')})" for key, (rec, ans) in fresh]
        noun = "resolver still gives" if len({k[0] for k, _ in fresh}) == 1 else "resolvers still give"
        text = f"{zone}: {noun} the old data after the old TTL expired: {', '.join(parts)}"
        events.append(Event("stale", zone, text, when, number, tuple(sorted({k[0] for k, _ in fresh}))))

    was = ((previous or {}).get("old_mail") or {}).get("accepting")
    old_mail = current.get("old_mail") or {}
    if old_mail.get("accepting") is False and was is not False:
        events.append(Event("old-mx", zone, f"{zone}: {old_mail.get('message')}", when, number))
    elif old_mail.get("accepting") is True and was is False:
        hosts = ", ".join(old_mail.get("hosts") or [])
        events.append(Event("old-mx", zone, f"{zone}: the old mail server {hosts} accepts mail for the domain again",
                            when, number))

    verdict = current.get("verdict") or {}
    if verdict.get("retire") and not ((previous or {}).get("verdict") or {}).get("retire"):
        text = f"{zone}: retire verdict reached: the old server can be switched off (round {number})"
        events.append(Event("verdict", zone, text, when, number))
    return events


def error_event(zones: Iterable[str], message: str, when: str | None = None) -> Event:
    names = ", ".join(zones) or "(no zone)"
    return Event("error", names, f"cutover watch stopped on an error ({names}): {message}", when)


# --------------------------------------------------------------------------- URLs


def redact(url: str) -> str:
    """``https://hooks.slack.com/services/T0/B0/xyz`` -> ``https://hooks.slack.com/…``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
    except ValueError:
        return "(unparseable URL)"
    try:
        port = parts.port
    except ValueError:
        port = None
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme or '?'}://{host}{f':{port}' if port else ''}/…"


def check_url(url: str) -> str:
    """An http(s) URL with a host, else a usage error that does not repeat the URL."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UsageError(f"--notify {redact(url)}: not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = redact(url) if parts.scheme and parts.hostname else "the value"  # a bare word may be a pasted token
        raise UsageError(f"--notify: {shown} is not an http:// or https:// webhook URL (e.g. https://hooks.slack.com/...)")
    return url


# --------------------------------------------------------------------------- delivery


def stderr_log(message: str) -> None:
    print(f"cutover: {message}", file=sys.stderr, flush=True)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class Policy:
    """How hard to try: ``attempts`` posts at most, waits doubling from ``backoff`` up to ``max_delay``."""

    attempts: int = 5
    backoff: float = 1.0
    max_delay: float = 60.0
    timeout: float = 5.0
    queue_size: int = 1000


_STOP = object()


class _Channel(threading.Thread):
    """One webhook: a queue and a daemon thread that posts its messages in order."""

    def __init__(self, url: str, policy: Policy, log: Callable[[str], None]) -> None:
        super().__init__(name=f"cutover-notify {redact(url)}", daemon=True)
        self._url = url
        self.shown = redact(url)
        self.policy = policy
        self.log = log
        self.queue: queue.Queue = queue.Queue(maxsize=policy.queue_size)
        self.deadline: float | None = None
        self.wake = threading.Event()
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.session = requests.Session()

    def __repr__(self) -> str:
        return f"<notify channel {self.shown}>"

    def put(self, event: Event) -> None:
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                self.log(f"notify {self.shown}: queue full, dropping messages (the webhook is not keeping up)")

    def finish(self, deadline: float) -> None:
        """Deliver what is queued until ``deadline``, then stop."""
        self.deadline = deadline
        try:
            self.queue.put_nowait(_STOP)
        except queue.Full:
            pass  # the deadline still stops the thread
        self.wake.set()

    def run(self) -> None:
        try:
            while True:
                item = self.queue.get()
                if item is _STOP:
                    return
                if self._late():
                    lost = 1 + self._discard()
                    self.failed += lost
                    self.log(f"notify {self.shown}: {lost} message(s) not sent: out of time at exit")
                    return
                self._deliver(item)
        finally:
            self.session.close()

    def _discard(self) -> int:
        count = 0
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return count
            count += item is not _STOP

    def _late(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _deliver(self, event: Event) -> None:
        p = self.policy
        why = ""
        for attempt in range(1, p.attempts + 1):
            timeout = p.timeout
            if self.deadline is not None:
                timeout = min(timeout, self.deadline - time.monotonic())
                if timeout <= 0:
                    why = f"{why}; out of time at exit" if why else "out of time at exit"
                    break
            delay = min(p.max_delay, p.backoff * 2 ** (attempt - 1))
            try:
                response = self.session.post(self._url, json=event.payload(), timeout=timeout, allow_redirects=False)
            except requests.Timeout:
                why = "timed out"
            except requests.RequestException as exc:
                why = f"connection failed ({type(exc).__name__})"  # str(exc) would name the URL
                if self.deadline is not None:  # exiting: an unreachable host will not be back in seconds
                    why += "; not retried at exit"
                    break
            else:
                status = response.status_code
                response.close()
                if 200 <= status < 300:
                    self.delivered += 1
                    return
                why = f"HTTP {status}"
                if status == 429 or status >= 500:
                    hint = retry_after(response.headers.get("Retry-After"))
                    if hint is not None:
                        delay = min(p.max_delay, hint)
                else:
                    self.failed += 1
                    self.log(f"notify {self.shown}: the {event.kind} message was refused ({why}); not retried")
                    return
            if attempt < p.attempts and not self._sleep(delay):
                why += "; out of time at exit"
                break
        self.failed += 1
        self.log(f"notify {self.shown}: gave up on the {event.kind} message after {attempt} attempt(s) ({why})")

    def _sleep(self, delay: float) -> bool:
        """Wait ``delay`` seconds; ``False`` at once if the exit deadline would come first."""
        end = time.monotonic() + delay
        while (now := time.monotonic()) < end:
            if self.deadline is not None and end > self.deadline:
                return False
            self.wake.wait(end - now)
            self.wake.clear()
        return True


class Notifier:
    """Turns round documents into webhook messages, without ever making a round wait.

    ``observe(doc)`` after each round; ``error(zones, message)`` when the watch dies;
    ``close(wait)`` at exit, which gives queued messages at most ``wait`` seconds.
    Every URL is checked before any thread starts, so a typo fails before the rounds.
    """

    def __init__(self, urls: Sequence[str], policy: Policy | None = None,
                 log: Callable[[str], None] = stderr_log) -> None:
        for url in urls:
            check_url(url)
        self.policy = policy or Policy()
        self.log = log
        self._last: dict[str, Mapping[str, Any]] = {}
        self._channels = [_Channel(url, self.policy, log) for url in urls]
        for ch in self._channels:
            ch.start()

    def __repr__(self) -> str:
        return f"Notifier([{', '.join(ch.shown for ch in self._channels)}])"

    @property
    def targets(self) -> list[str]:
        """The webhooks, redacted: what may be shown."""
        return [ch.shown for ch in self._channels]

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return {ch.shown: {"delivered": ch.delivered, "failed": ch.failed, "dropped": ch.dropped} for ch in self._channels}

    def seed(self, doc: Mapping[str, Any] | None) -> None:
        """Start from a journalled round, so that a restarted watch does not repeat old news."""
        if doc:
            self._last[str(doc.get("zone", ""))] = doc

    def observe(self, doc: Mapping[str, Any]) -> list[Event]:
        zone = str(doc.get("zone", ""))
        events = round_events(self._last.get(zone), doc)
        self._last[zone] = doc
        for event in events:
            self.send(event)
        return events

    def error(self, zones: Iterable[str], message: str) -> Event:
        event = error_event(zones, message, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self.send(event)
        return event

    def send(self, event: Event) -> None:
        for ch in self._channels:
            ch.put(event)

    def close(self, wait: float = 5.0) -> None:
        """Flush for at most ``wait`` seconds in all; then leave the daemon threads behind."""
        deadline = time.monotonic() + max(0.0, wait)
        for ch in self._channels:
            ch.finish(deadline)
        for ch in self._channels:
            ch.join(max(0.0, deadline - time.monotonic()) + 0.05)
            if ch.is_alive():
                pending = ch.queue.qsize()
                self.log(f"notify {ch.shown}: still busy at exit; {pending} queued message(s) not sent")
