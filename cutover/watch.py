"""Propagation rounds: ask many resolvers about many names at once and classify each answer.

A round is one question per (record, resolver) pair, all in flight together under a
semaphore, so a round costs about the slowest resolver's time rather than the sum.
Every answer is reduced to one word (``new``, ``old``, ``other`` or an error class)
because that is what the retire verdict and the operator reason about; the values and
TTL stay attached so that odd answers can still be explained.

The query engine is deliberately suspicious: UDP replies from another address, with
another id or for another question are ignored (a spoofed or late stray packet must not
decide a verdict), unparseable or oversized replies make the answer ``malformed``, and
the round has a hard deadline that no silent resolver can stretch.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import multiprocessing
import os
import socket
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import dns.asyncbackend
import dns.asyncquery
import dns.entropy
import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from cutover.records import RecordKey, canonical_rdata
from cutover.resolvers import Resolver
from cutover.times import iso

if TYPE_CHECKING:  # verdict imports this module; the reverse is only for type hints
    from cutover.verdict import Verdict

#: Answers that say something about the record's data; the share is computed over these.
ANSWERED = ("new", "old", "other")
#: Error classes: the resolver gave no usable statement about the record.
ERRORS = ("timeout", "servfail", "refused", "nxdomain", "nodata", "malformed", "error")
#: A filtering resolver's block answer: neither propagated nor a failure.
FILTERED = "filtered"

AUTHORITATIVE = "authoritative"

#: EDNS buffer we advertise (the DNS Flag Day 2020 value); a larger UDP reply is a broken server.
PAYLOAD = 1232
#: Extra time a round may take beyond its queries' own timeouts (task start-up, TCP fallback).
ROUND_SLACK = 0.5
MAX_CNAME_CHAIN = 16
#: Rounds with at least this many queries use every core (``run_round``); below it a
#: process's start-up (about 0.3 s) costs more than the second core saves.
PARALLEL_FROM = 20_000
#: Queries in flight at once (each holds a UDP socket; capped by the open-files limit).
#: Pairs are issued target by target, so one resolver sees about this / len(resolvers).
CONCURRENCY = 1024
#: Deadline allowance per query in a round: one exchange costs 0.4-0.6 ms of CPU on a
#: 2-core machine (benchmarks/README.md), which leaves room for a busy or slower one.
CPU_PER_QUERY = 0.002

#: Answers by which filtering services say "blocked" instead of the real data:
#: the null routes, and Cisco OpenDNS's documented block-page addresses.
SINKHOLES = frozenset(
    {"0.0.0.0", "127.0.0.1", "::", "::1"}
    | {f"146.112.61.{n}" for n in range(104, 111)}
    | {f"::ffff:146.112.61.{n}" for n in range(104, 111)}
)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Target:
    """One record set to watch: what "new" and "old" mean for it.

    ``new == ()`` means the record set is being deleted (so an empty answer is the new
    state); ``old == ()`` means it is being created (an empty answer is the old state,
    and ``old_ttl`` is then the zone's negative-caching TTL).
    """

    key: RecordKey
    new: tuple[str, ...]
    old: tuple[str, ...]
    old_ttl: int

    @property
    def name(self) -> str:
        return self.key[0]

    @property
    def type(self) -> str:
        return self.key[1]


@dataclass(frozen=True)
class Answer:
    """What one resolver said about one record, reduced to a state."""

    resolver: Resolver
    key: RecordKey
    state: str
    ttl: int | None
    values: tuple[str, ...]
    detail: str = ""
    elapsed: float | None = None

    @property
    def answered(self) -> bool:
        return self.state in ANSWERED

    def as_dict(self, stale: bool = False) -> dict[str, Any]:
        r = self.resolver
        return {
            "resolver": r.label,
            "address": r.endpoint,
            "operator": r.operator,
            "country": r.country,
            "group": r.group,
            "filtering": r.filtering,
            "state": self.state,
            "ttl": self.ttl,
            "values": list(self.values),
            "detail": self.detail,
            "elapsed": None if self.elapsed is None else round(self.elapsed, 3),
            "stale": stale,
        }


@dataclass(frozen=True)
class Round:
    """All answers of one round, stamped with the (UTC) time the round started."""

    number: int
    time: datetime
    answers: tuple[Answer, ...]


@dataclass(frozen=True)
class RecordSummary:
    """Per record: how the (non-authoritative) resolvers split between the states.

    ``share`` is new / (new + old + other): errors and filtered answers say nothing about
    propagation, so they are left out. It is ``None`` when nobody answered, which the
    verdict treats as *not* propagated (silence is not evidence).
    """

    key: RecordKey
    new: int = 0
    old: int = 0
    other: int = 0
    error: int = 0
    filtered: int = 0
    answers: tuple[Answer, ...] = field(default=(), repr=False)

    @property
    def answering(self) -> int:
        return self.new + self.old + self.other

    @property
    def share(self) -> float | None:
        return self.new / self.answering if self.answering else None

    @property
    def counts(self) -> dict[str, int]:
        return {"new": self.new, "old": self.old, "other": self.other, "error": self.error, "filtered": self.filtered}


# --------------------------------------------------------------------------- classification


def classify(target: Target, rcode: int, values: Sequence[str], filtering: bool) -> str:
    """The state of one answer, from its rcode and the canonical values it carried.

    Matching comes first: an empty answer *is* the expected data for a record being
    created (old) or deleted (new), and only otherwise an error class. A filtering
    resolver's block answer is set apart so that a blocklist does not look like a
    resolver that missed the change.
    """
    got = tuple(sorted(set(values)))
    rcode = int(rcode)
    if rcode == dns.rcode.NOERROR and got:
        if got == target.new:
            return "new"
        if got == target.old:
            return "old"
        if filtering and set(got) <= SINKHOLES:
            return FILTERED
        return "other"
    if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        if target.new == ():
            return "new"
        if target.old == ():
            return "old"
        if filtering:
            return FILTERED
        return "nxdomain" if rcode == dns.rcode.NXDOMAIN else "nodata"
    if rcode == dns.rcode.SERVFAIL:
        return "servfail"
    if rcode == dns.rcode.REFUSED:
        return "refused"
    return "error"


# --------------------------------------------------------------------------- one round


def round_deadline(timeout: float, retries: int, queries: int = 0) -> float:
    """Seconds a whole round may take: every attempt's timeout, a little slack, and a CPU
    allowance per query, so that a big round (thousands of names times fifty resolvers)
    is not cut off while healthy queries still wait for a slot. The bound depends only on
    the round's size, never on how resolvers behave: a silent one still cannot stretch it."""
    return timeout * (retries + 1) + ROUND_SLACK + queries * CPU_PER_QUERY


async def query_round(
    targets: Sequence[Target],
    resolvers: Sequence[Resolver],
    *,
    timeout: float,
    retries: int = 1,
    concurrency: int = CONCURRENCY,
) -> list[Answer]:
    """Ask every resolver about every target, concurrently; one answer per pair.

    A fixed pool of workers takes the pairs in turn, so a round of half a million pairs
    holds ``concurrency`` tasks, not half a million (cancelling that many tasks queued on
    a semaphore is quadratic in asyncio). Pairs are taken target by target, so each
    resolver sees about ``concurrency / len(resolvers)`` queries at once rather than
    the whole window. Answers come back in (resolver, target) order. Pairs still
    unanswered at the round's hard deadline are reported as ``timeout``.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    loop = asyncio.get_running_loop()
    pairs = [(t, r) for r in resolvers for t in targets]
    deadline = loop.time() + round_deadline(timeout, retries, len(pairs))
    answers: list[Answer | None] = [None] * len(pairs)
    started = bytearray(len(pairs))
    count = len(targets)
    order = (r * count + t for t in range(count) for r in range(len(resolvers)))
    templates: dict[tuple[Target, bool], tuple[dns.message.Message, bytes]] = {}

    async def worker() -> None:
        for i in order:  # one shared iterator: each worker takes the next pair
            target, resolver = pairs[i]
            started[i] = 1
            try:
                answers[i] = await _ask(target, resolver, timeout=timeout, retries=retries, deadline=deadline, templates=templates)
            except Exception as exc:  # a bug or an OS surprise: report it on this pair, keep the round
                answers[i] = Answer(resolver, target.key, "error", None, (), f"unexpected failure: {type(exc).__name__}: {exc}")

    size = min(len(pairs), max(1, min(concurrency, _socket_budget())))
    workers = [asyncio.ensure_future(worker()) for _ in range(size)]
    if workers:
        _, pending = await asyncio.wait(workers, timeout=max(0.0, deadline - loop.time()))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    return [a if a is not None else _late(t, r, bool(s)) for a, (t, r), s in zip(answers, pairs, started)]


def run_round(
    targets: Sequence[Target],
    resolvers: Sequence[Resolver],
    *,
    timeout: float,
    retries: int = 1,
    processes: int | None = None,
) -> list[Answer]:
    """A whole round from synchronous code, on every CPU core when it is big.

    A large round is CPU-bound (each reply is parsed by dnspython), not network-bound, so
    from ``PARALLEL_FROM`` queries on the resolvers are split into one contiguous slice per
    core, each asked by its own process. Answers come back in the same (resolver, target)
    order as from ``query_round``; each slice keeps its own hard deadline.
    """
    pairs = len(targets) * len(resolvers)
    if processes is None:
        processes = (os.cpu_count() or 1) if pairs >= PARALLEL_FROM else 1
    processes = max(1, min(processes, len(resolvers)))
    if processes == 1:
        return asyncio.run(query_round(targets, resolvers, timeout=timeout, retries=retries))
    step = -(-len(resolvers) // processes)
    slices = [list(resolvers[i:i + step]) for i in range(0, len(resolvers), step)]
    # spawn, not fork: the caller may run threads (webhook senders, the sandbox's servers)
    with ProcessPoolExecutor(len(slices), mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = pool.map(_slice_round, [(list(targets), chunk, timeout, retries) for chunk in slices])
        return [answer for part in parts for answer in part]


def _slice_round(job: tuple[list[Target], list[Resolver], float, int]) -> list[Answer]:
    targets, resolvers, timeout, retries = job
    return asyncio.run(query_round(targets, resolvers, timeout=timeout, retries=retries))


def _socket_budget() -> int:
    """Queries in flight each hold a socket: stay well inside the open-files limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Unix
        return 256
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 16
    return max(8, soft - 128)


def _late(target: Target, resolver: Resolver, started: bool) -> Answer:
    if started:
        return Answer(resolver, target.key, "timeout", None, (), "no answer before the round's deadline")
    return Answer(resolver, target.key, "timeout", None, (), "the round's deadline passed before this query could be sent")


class _Failed(Exception):
    """The exchange ended without a usable response; carries the state and why."""

    def __init__(self, state: str, detail: str) -> None:
        super().__init__(detail)
        self.state = state
        self.detail = detail


async def _ask(
    target: Target, resolver: Resolver, *, timeout: float, retries: int, deadline: float,
    templates: dict[tuple[Target, bool], tuple[dns.message.Message, bytes]] | None = None,
) -> Answer:
    loop = asyncio.get_running_loop()
    start = loop.time()
    if start >= deadline:
        return Answer(resolver, target.key, "timeout", None, (), "the round's deadline passed before this query could be sent")
    query, wire = _make_query(target, resolver, {} if templates is None else templates)
    try:
        response, via = await _exchange(query, wire, resolver, timeout=timeout, retries=retries, deadline=deadline)
    except _Failed as failed:
        return Answer(resolver, target.key, failed.state, None, (), failed.detail, loop.time() - start)
    return read_response(target, resolver, response, via=via, elapsed=loop.time() - start)


def _make_query(
    target: Target, resolver: Resolver, templates: dict[tuple[Target, bool], tuple[dns.message.Message, bytes]]
) -> tuple[dns.message.Message, bytes]:
    """The query and its wire form, with a fresh random id.

    Building and rendering a message costs more than the rest of an exchange; the same
    question goes to every resolver, so it is built once per round and only the id is
    new for each pair (a shallow copy: the question section is shared, never changed).
    """
    recursive = resolver.group != AUTHORITATIVE
    template = templates.get((target, recursive))
    if template is None:
        built = dns.message.make_query(target.name, target.type, use_edns=0, payload=PAYLOAD)
        if not recursive:
            built.flags &= ~dns.flags.RD  # ask the server what it holds, not what it can find
        template = templates[(target, recursive)] = (built, built.to_wire())
    query = copy.copy(template[0])
    query.id = dns.entropy.random_16()
    return query, query.id.to_bytes(2, "big") + template[1][2:]


async def _exchange(
    query: dns.message.Message, wire: bytes, resolver: Resolver, *, timeout: float, retries: int, deadline: float
) -> tuple[dns.message.Message, str]:
    """UDP with retransmission; TCP when the UDP answer is truncated."""
    response = await _udp(query, wire, resolver, timeout=timeout, retries=retries, deadline=deadline)
    if not response.flags & dns.flags.TC:
        return response, "udp"
    remaining = min(timeout, deadline - asyncio.get_running_loop().time())
    if remaining <= 0:
        raise _Failed("timeout", "truncated UDP answer and no time left for TCP")
    try:
        response = await dns.asyncquery.tcp(query, resolver.address, timeout=remaining, port=resolver.port)
    except dns.exception.Timeout:
        raise _Failed("timeout", "truncated UDP answer; TCP timed out") from None
    except dns.exception.DNSException as exc:  # unparseable, or not a response to our query
        raise _Failed("malformed", f"truncated UDP answer; bad TCP answer ({type(exc).__name__})") from None
    except (OSError, EOFError) as exc:
        raise _Failed("error", f"truncated UDP answer; TCP failed ({_os_reason(exc)})") from None
    return response, "tcp"


async def _udp(
    query: dns.message.Message, wire: bytes, resolver: Resolver, *, timeout: float, retries: int, deadline: float
) -> dns.message.Message:
    """Send the query, retransmit the same bytes on the same socket after each timeout.

    Keeping one socket and one id means a late answer to the first transmission is still
    accepted during the retry window: a slow resolver is slow, not dead. Stray packets
    (other source, other id, other question) are ignored and listening goes on, so a
    spoofer cannot decide the answer; garbage from the right source is remembered and
    reported as ``malformed`` if nothing valid follows.
    """
    loop = asyncio.get_running_loop()
    af = dns.inet.af_for_address(resolver.address)
    destination = dns.inet.low_level_address_tuple((resolver.address, resolver.port), af)
    backend = dns.asyncbackend.get_default_backend()
    malformed: list[str] = []
    strays = 0
    try:
        sock = await backend.make_socket(af, socket.SOCK_DGRAM, 0, None, None)
    except OSError as exc:
        raise _Failed("error", f"cannot open a socket ({_os_reason(exc)})") from None
    async with sock:
        for attempt in range(retries + 1):
            try:
                await sock.sendto(wire, destination, None)
            except OSError as exc:
                raise _Failed("error", f"cannot send ({_os_reason(exc)})") from None
            until = min(loop.time() + timeout, deadline)
            while (remaining := until - loop.time()) > 0:
                try:
                    data, source = await sock.recvfrom(65535, remaining)
                except dns.exception.Timeout:
                    break
                except OSError as exc:
                    raise _Failed("error", f"receive failed ({_os_reason(exc)})") from None
                if not _same_endpoint(source, resolver):
                    strays += 1
                    continue
                if len(data) > PAYLOAD:
                    malformed.append(f"oversized UDP reply ({len(data)} bytes > {PAYLOAD} advertised)")
                    continue
                try:
                    response = dns.message.from_wire(data)
                except dns.exception.DNSException as exc:
                    malformed.append(f"unparseable reply ({type(exc).__name__})")
                    continue
                if not query.is_response(response):
                    strays += 1
                    continue
                return response
            if malformed:
                break
    if malformed:
        raise _Failed("malformed", malformed[0])
    waited = "no answer" + (f" (ignored {strays} stray replies)" if strays else "")
    tries = f"{retries + 1} tries" if retries else "1 try"
    raise _Failed("timeout", f"{waited} after {tries} of {timeout:g}s")


def _same_endpoint(source: Any, resolver: Resolver) -> bool:
    try:
        if source[0] == resolver.address and source[1] == resolver.port:
            return True  # the usual case, without parsing two addresses per packet
        return ipaddress.ip_address(source[0]) == ipaddress.ip_address(resolver.address) and int(source[1]) == resolver.port
    except (ValueError, TypeError, IndexError):
        return False


def _os_reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


# --------------------------------------------------------------------------- reading a response


def read_response(
    target: Target, resolver: Resolver, response: dns.message.Message, *, via: str = "udp", elapsed: float | None = None
) -> Answer:
    """Reduce a response that matched our query to an ``Answer``.

    The compared data is the RRset of the asked type at the end of any CNAME chain
    (for a CNAME target, the CNAME itself); a negative answer's TTL is its SOA's.
    """
    rcode = response.rcode()
    notes = ["via TCP after a truncated UDP answer"] if via == "tcp" else []
    positive_or_negative = rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
    if resolver.group == AUTHORITATIVE and positive_or_negative and not response.flags & dns.flags.AA:
        return Answer(resolver, target.key, "error", None, (), "answer without the AA flag: the server is not authoritative for this name", elapsed)
    try:
        rrset = _final_rrset(response, target)
    except ValueError as exc:
        return Answer(resolver, target.key, "malformed", None, (), str(exc), elapsed)
    values = tuple(sorted({canonical_rdata(rd) for rd in rrset})) if rrset is not None else ()
    ttl = rrset.ttl if rrset is not None else _negative_ttl(response)
    if not positive_or_negative:
        values, ttl = (), None
    state = classify(target, rcode, values, resolver.filtering)
    if state in ERRORS or state == FILTERED:
        notes.insert(0, f"rcode {dns.rcode.to_text(rcode)}")
    return Answer(resolver, target.key, state, ttl, values, "; ".join(notes), elapsed)


def _final_rrset(response: dns.message.Message, target: Target) -> dns.rrset.RRset | None:
    """The RRset of the asked type at the end of the CNAME chain (or the CNAME itself)."""
    rdtype = dns.rdatatype.from_text(target.type)
    name = dns.name.from_text(target.name)
    seen: set[dns.name.Name] = set()
    for _ in range(MAX_CNAME_CHAIN):
        rrset = _find(response, name, rdtype)
        if rrset is not None or rdtype == dns.rdatatype.CNAME:
            return rrset
        cname = _find(response, name, dns.rdatatype.CNAME)
        if cname is None:
            return None
        seen.add(name)
        name = cname[0].target
        if name in seen:
            raise ValueError(f"CNAME loop at {name}")
    raise ValueError(f"CNAME chain longer than {MAX_CNAME_CHAIN}")


def _find(response: dns.message.Message, name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
    """A plain scan: the message's own index only covers RRsets it parsed or created itself."""
    for rrset in response.answer:
        if rrset.name == name and rrset.rdtype == rdtype and rrset.rdclass == dns.rdataclass.IN and len(rrset):
            return rrset
    return None


def _negative_ttl(response: dns.message.Message) -> int | None:
    """How long a negative answer may be cached (RFC 2308: min of SOA TTL and MINIMUM)."""
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return min(rrset.ttl, rrset[0].minimum)
    return None


# --------------------------------------------------------------------------- summaries


def summarise(round: Round, targets: Sequence[Target]) -> list[RecordSummary]:
    """Per target, the split of the non-authoritative resolvers' answers."""
    return [_summary(t.key, [a for a in round.answers if a.key == t.key and a.resolver.group != AUTHORITATIVE]) for t in targets]


def summarise_authoritative(round: Round, targets: Sequence[Target]) -> list[RecordSummary]:
    return [_summary(t.key, [a for a in round.answers if a.key == t.key and a.resolver.group == AUTHORITATIVE]) for t in targets]


def _summary(key: RecordKey, answers: list[Answer]) -> RecordSummary:
    count = {s: 0 for s in ("new", "old", "other", "error", FILTERED)}
    for a in answers:
        count[a.state if a.state in count else "error"] += 1
    return RecordSummary(key, count["new"], count["old"], count["other"], count["error"], count[FILTERED], tuple(answers))


def authoritative_all_new(round: Round, targets: Sequence[Target]) -> bool:
    """True when at least one authoritative server answered for every target and all said new.

    This is how a change made outside cutover is dated: the first such round.
    """
    if not targets:
        return False
    for summary in summarise_authoritative(round, targets):
        if not summary.answers or summary.new != len(summary.answers):
            return False
    return True


# --------------------------------------------------------------------------- documents


def round_document(
    round: Round, targets: Sequence[Target], verdict: "Verdict", *, stale: Iterable[Answer] = ()
) -> dict[str, Any]:
    """The contract's watch JSON for one round (plus details: addresses, values, staleness)."""
    stale_ids = {(a.resolver, a.key) for a in stale}
    authoritative = {s.key: s for s in summarise_authoritative(round, targets)}
    records = []
    for target, summary in zip(targets, summarise(round, targets)):
        auth = authoritative[target.key]
        records.append(
            {
                "name": target.name,
                "type": target.type,
                "counts": summary.counts,
                "share": summary.share if summary.share is not None else 0.0,
                "answering": summary.answering,
                "new": list(target.new),
                "old": list(target.old),
                "old_ttl": target.old_ttl,
                "answers": [a.as_dict((a.resolver, a.key) in stale_ids) for a in summary.answers],
                "authoritative": {
                    "all_new": bool(auth.answers) and auth.new == len(auth.answers),
                    "answers": [a.as_dict() for a in auth.answers],
                },
            }
        )
    return {
        "round": round.number,
        "time": iso(round.time),
        "records": records,
        "authoritative_all_new": authoritative_all_new(round, targets),
        "stale": len(stale_ids),
        "verdict": verdict.as_dict(),
    }
