"""``cutover audit``: which of a hoster's customers, running their own DNS, have moved.

A hoster renumbering its servers (``--old`` to ``--new``) cannot change its customers'
DNS; it can only find out, for thousands of domains, who still points at the old
address, tell them, and know when the old server can go. The package, one concept a
module:

* ``domains``: the DOMAINS file (plain or CSV) and the options, checked before any query;
* ``lookup``: the questions (through the query engine, per-server limits), one
  ``Observation`` per domain;
* ``classify``: pure, an observation to a ``DomainResult`` (``moved``, ``old``,
  ``mixed``, ``elsewhere``, ``unreachable``);
* ``store``: results in the state directory, so that an interrupted run resumes;
* ``run``: the processes, the progress line, the report;
* ``output``: table, JSON, CSV for a mail merge, the HTML page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from cutover.audit.classify import STATUSES
from cutover.audit.domains import addresses, read_domains, relative_names
from cutover.audit.lookup import Limits
from cutover.audit.run import AuditReport, AuditRequest, resolvers_from
from cutover.errors import UsageError

__all__ = ["AuditReport", "AuditRequest", "Limits", "request"]


def request(domains: str | Path, *, old: Sequence[str], new: Sequence[str], names: Sequence[str] = (),
            resolvers: str | None = None, fresh: bool = False, recheck: str | None = None,
            timeout: float = Limits.timeout, retries: int = Limits.retries, rate: float = Limits.rate,
            concurrency: int = Limits.concurrency, processes: int | None = None) -> AuditRequest:
    """Every option checked (exit 2, naming the option or FILE:LINE) before DNS is asked."""
    old_set = addresses(",".join(old), "--old")
    new_set = addresses(",".join(new), "--new")
    both = sorted(old_set & new_set)
    if both:
        raise UsageError(f"--old and --new both name {', '.join(both)}: an address cannot be old and new")
    if timeout <= 0 or timeout > 60:
        raise UsageError(f"--timeout {timeout:g}: expected seconds between 0 and 60")
    if not 0 <= retries <= 10:
        raise UsageError(f"--retries {retries}: expected 0 to 10")
    if rate < 0:
        raise UsageError(f"--rate {rate:g}: expected queries per second per server (0: no limit)")
    if concurrency < 1:
        raise UsageError(f"--concurrency {concurrency}: expected at least 1 query in flight per server")
    if processes is not None and not 1 <= processes <= 64:
        raise UsageError(f"--processes {processes}: expected 1 to 64")
    rechecked: frozenset[str] = frozenset()
    if recheck:
        rechecked = frozenset(s.strip() for s in recheck.split(",") if s.strip())
        unknown = sorted(rechecked - set(STATUSES))
        if unknown:
            raise UsageError(f"--recheck: {unknown[0]!r} is not a status (expected {', '.join(STATUSES)})")
    relative = relative_names(names)
    chosen = resolvers_from(resolvers)
    listed = read_domains(domains)
    return AuditRequest(listed, old_set, new_set, relative, chosen,
                        Limits(timeout=timeout, retries=retries, concurrency=concurrency, rate=rate),
                        fresh=fresh, recheck=rechecked, processes=processes)
