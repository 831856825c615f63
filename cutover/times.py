"""Times as operators read them: ISO 8601 UTC for records, ``in 5m`` for planning."""

from __future__ import annotations

import time


def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC, seconds precision: what the JSON documents and the journal carry."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def span(seconds: float) -> str:
    """``in 5m`` / ``3h ago``: a coarse, readable distance in time."""
    ahead = seconds >= 0
    s = abs(int(seconds))
    if s < 120:
        text = f"{s}s"
    elif s < 7200:
        text = f"{s // 60}m"
    elif s < 172800:
        text = f"{s / 3600:.1f}h"
    else:
        text = f"{s / 86400:.1f}d"
    return f"in {text}" if ahead else f"{text} ago"


def when(ts: float | None, now: float | None = None) -> str:
    """An absolute UTC time with how far away it is, the way an operator plans a night."""
    if ts is None:
        return "unknown"
    return f"{iso(ts)} ({span(ts - (now if now is not None else time.time()))})"
