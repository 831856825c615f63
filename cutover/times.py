"""Times as operators read them: ISO 8601 UTC for records, ``in 5m`` for planning."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone


def iso(moment: float | datetime | None) -> str | None:
    """ISO 8601 UTC, seconds precision: what the JSON documents and the journal carry.
    Takes a POSIX time or a datetime (a naive one is taken as UTC)."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def iso_precise(moment: float | datetime | None) -> str | None:
    """ISO 8601 UTC with milliseconds: a round's time, compared with other moments to the
    sub-second (a verdict must not look earlier than it was by rounding down)."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        moment = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    # down to the millisecond (as ``iso`` to the second), with a microsecond's allowance so
    # that a time read back from this text is written the same again
    seconds, millis = divmod(math.floor(moment * 1000 + 1e-3), 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


def parse_iso(text: str) -> datetime:
    """The inverse of ``iso`` (``fromisoformat`` takes the ``Z`` only from Python 3.11 on)."""
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def duration(seconds: float) -> str:
    """``90`` -> ``1m30s``, ``604800`` -> ``7d``: a duration as an operator writes it (two units at most)."""
    total = int(round(max(0.0, seconds)))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts[:2]) or "0s"


def percent(share: float | None) -> str:
    """``0.955`` -> ``95.5%``; ``None`` (nobody answered) -> ``-``."""
    if share is None:
        return "-"
    tenths = round(share * 1000)
    if share < 1 and tenths >= 1000:  # 2499/2500 must not read 100%: it is below a 100% threshold
        tenths = 999
    return f"{f'{tenths / 10:.1f}'.rstrip('0').rstrip('.')}%"


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
