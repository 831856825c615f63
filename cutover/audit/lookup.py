"""Asking DNS about many domains at once, politely: the lookups behind ``cutover audit``.

Every question goes through the project's query engine (``observe.engine.query_round``,
suspicious UDP with retransmission and TCP fallback, in this process's event loop).
Questions are not sent as they come: each server has a *lane* that queues the questions
for it and lets them go, each as its own engine round (so that a question waiting for
a timeout holds only its own slot, not a batch's), with

* at most ``concurrency`` questions in flight to that server (a customer's DNS server
  must not see a flood because 5,000 of the hoster's customers use it),
* a token bucket of ``rate`` questions per second to that server,
* a bound on all questions in flight (each holds a socket),
* the engine's retransmissions for timeouts (``retries``).

Per domain (``Auditor.observe``): the NS names through the resolver (falling back to the
parent zone's delegation when the resolver fails, which is what a lame delegation makes
it do, so that the broken servers can be named); the NS names' addresses through the
resolver; the SOA from every server address (reachable? authoritative? which serial?);
then the apex, ``www``, the MX and ``--names`` from one server per distinct serial (the
same serial is the same zone version, so asking each of twenty servers the same seven
questions would only multiply the load); then the MX hosts' addresses (inside the
domain: from its servers; outside: through the resolver) and, where a name has no
address, its CNAME. Answers about names many domains share (NS hosts, a hosted MX) are
asked once per process.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Sequence

from cutover.audit.classify import Lookup, Observation, Server, ServerCheck
from cutover.observe import engine
from cutover.observe.types import AUTHORITATIVE, PARENT, Answer, Target
from cutover.resolvers import Resolver

#: ``Target.new``/``old`` that no answer equals: the engine then reports a value as
#: ``other`` and an empty answer as ``nodata`` or ``nxdomain``, never as new or old.
NOTHING = ("(the audit compares no value)",)
#: Engine states that answer the question (a value, or its authoritative absence).
ANSWERS = ("other", "nodata", "nxdomain")
#: Questions a lane takes from its queue at one step (each is still its own engine round).
MAX_CHUNK = 256
#: The token bucket holds this share of a second's rate (bursts stay small).
BURST = 0.1


def target(name: str, rtype: str) -> Target:
    return Target((name, rtype), NOTHING, NOTHING, 0)


@dataclass(frozen=True)
class Limits:
    """How hard one process may ask: per server and overall."""

    timeout: float = 2.0
    retries: int = 2
    concurrency: int = 50  # questions in flight to one server
    rate: float = 500.0  # questions per second to one server; 0: no limit
    total: int = 1024  # questions in flight overall


class Budget:
    """Up to ``size`` units held at once; ``take`` grants what is free (at least one)."""

    def __init__(self, size: int) -> None:
        self.free = max(1, size)
        self._freed = asyncio.Event()

    async def take(self, wanted: int) -> int:
        while self.free <= 0:
            self._freed.clear()
            await self._freed.wait()
        granted = min(wanted, self.free)
        self.free -= granted
        return granted

    def give(self, count: int) -> None:
        if count > 0:
            self.free += count
            self._freed.set()


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved up; ``take`` waits for one."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * BURST)
        self.tokens = self.capacity
        self.clock = clock
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, wanted: int) -> int:
        while True:
            self._refill()
            if self.tokens >= 1:
                granted = min(wanted, int(self.tokens))
                self.tokens -= granted
                return granted
            await asyncio.sleep((1 - self.tokens) / self.rate)

    def refund(self, count: int) -> None:
        self.tokens = min(self.capacity, self.tokens + count)


class Lane:
    """The questions waiting for one server, sent as engine rounds within its limits."""

    def __init__(self, server: Resolver, dispatcher: "Dispatcher") -> None:
        self.server = server
        self.dispatcher = dispatcher
        self.pending: deque[tuple[Target, asyncio.Future[Answer]]] = deque()
        self.room = Budget(dispatcher.limits.concurrency)
        self.bucket = TokenBucket(dispatcher.limits.rate) if dispatcher.limits.rate > 0 else None
        self.pumping = False

    def submit(self, question: Target, future: asyncio.Future[Answer]) -> None:
        self.pending.append((question, future))
        if not self.pumping:
            self.pumping = True
            self.dispatcher.spawn(self._pump())

    async def _pump(self) -> None:
        try:
            await asyncio.sleep(0)  # questions asked in the same step go out together
            while self.pending:
                count = await self.room.take(min(len(self.pending), MAX_CHUNK))
                if self.bucket is not None:
                    tokens = await self.bucket.take(count)
                    self.room.give(count - tokens)
                    count = tokens
                slots = await self.dispatcher.total.take(count)
                if slots < count:
                    self.room.give(count - slots)
                    if self.bucket is not None:
                        self.bucket.refund(count - slots)
                # Only this pump takes from ``pending``, so it still holds ``slots`` questions.
                # Each is its own engine round: a slow one then holds only its own slot.
                for _ in range(slots):
                    self.dispatcher.spawn(self._send([self.pending.popleft()]))
        finally:
            self.pumping = False

    async def _send(self, chunk: list[tuple[Target, asyncio.Future[Answer]]]) -> None:
        limits = self.dispatcher.limits
        questions = [q for q, _ in chunk]
        try:
            answers = await engine.query_round(questions, [self.server], timeout=limits.timeout,
                                               retries=limits.retries, concurrency=len(chunk))
        except Exception as exc:  # noqa: BLE001 - a bug or an OS surprise: each question says so
            answers = [Answer(self.server, q.key, "error", None, (), f"unexpected failure: {type(exc).__name__}: {exc}")
                       for q in questions]
        finally:
            self.room.give(len(chunk))
            self.dispatcher.total.give(len(chunk))
        self.dispatcher.sent += len(chunk)
        for (_, future), answer in zip(chunk, answers):
            if not future.done():
                future.set_result(answer)


class Dispatcher:
    """Every server's lane in one event loop; ``ask`` is the one way a question is sent."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.total = Budget(limits.total)
        self.lanes: dict[Resolver, Lane] = {}
        self.sent = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def ask(self, question: Target, server: Resolver) -> Answer:
        lane = self.lanes.get(server)
        if lane is None:
            lane = self.lanes[server] = Lane(server, self)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        lane.submit(question, future)
        return await future


class Auditor:
    """The lookups for one domain at a time (many at once), sharing one dispatcher and
    what was learnt about names many domains share."""

    def __init__(self, resolvers: Sequence[Resolver], names: Sequence[str], dispatcher: Dispatcher) -> None:
        if not resolvers:
            raise ValueError("an audit needs at least one resolver")
        self.resolvers = tuple(resolvers)
        self.names = tuple(names)
        self.dispatcher = dispatcher
        self._shared: dict[tuple[str, str], asyncio.Future[Answer]] = {}

    # ------------------------------------------------------------------ resolver

    async def resolve(self, name: str, rtype: str, *, shared: bool = True) -> Answer:
        """Through the resolvers: the first, then the next for a question it failed.
        A shared name is asked once; every domain that needs it awaits that answer."""
        if not shared:
            return await self._resolve(name, rtype)
        key = (name, rtype)
        future = self._shared.get(key)
        if future is None:
            future = self._shared[key] = asyncio.ensure_future(self._resolve(name, rtype))
        return await asyncio.shield(future)

    async def _resolve(self, name: str, rtype: str) -> Answer:
        answer: Answer | None = None
        for resolver in self.resolvers:
            answer = await self.dispatcher.ask(target(name, rtype), resolver)
            if answer.state in ANSWERS:
                break
        assert answer is not None
        return answer

    async def addresses(self, host: str) -> tuple[tuple[str, ...], str]:
        """A host's IPv4 and IPv6 addresses through the resolver, and why there are none."""
        a, aaaa = await asyncio.gather(self.resolve(host, "A"), self.resolve(host, "AAAA"))
        found = tuple(v for ans in (a, aaaa) if ans.state == "other" for v in ans.values)
        return found, "" if found else f"A: {describe(a)}, AAAA: {describe(aaaa)}"

    # ------------------------------------------------------------------ one domain

    async def observe(self, domain: str) -> Observation:
        notes: list[str] = []
        ns = await self.resolve(domain, "NS", shared=False)
        if ns.state == "other":
            names = ns.values
        elif ns.state == "nxdomain":
            return Observation(domain, problem=f"the domain does not exist (NXDOMAIN from {source(ns)})")
        else:  # a lame delegation makes the resolver fail (or, delegated to the parent itself, find no NS)
            names, why = await self.delegation(domain)
            if not names and ns.state == "nodata":
                return Observation(domain, problem="no NS records: the name is inside another zone, not a domain of its own")
            if not names:
                return Observation(domain, problem=f"no NS records: {source(ns)}: {describe(ns)}; {why}")
            notes.append(f"{source(ns)}: {describe(ns)} for the NS records; the servers named by the parent zone were asked")
        servers, checks = await self._servers(names)
        soas = await asyncio.gather(*(self.dispatcher.ask(target(domain, "SOA"), authoritative(s)) for s in servers))
        checks += [server_check(s, a) for s, a in zip(servers, soas)]
        by_serial: dict[int | None, list[Server]] = {}
        for check in checks:
            if check.state == "ok":
                by_serial.setdefault(check.serial, []).append(check.server)
        lookups: list[Lookup] = []
        for group in by_serial.values():
            lookups += await self._records(domain, group)
        return Observation(domain, tuple(names), "", tuple(checks), tuple(lookups), tuple(notes))

    async def _servers(self, names: Sequence[str]) -> tuple[list[Server], list[ServerCheck]]:
        found = await asyncio.gather(*(self.addresses(n) for n in names))
        servers: list[Server] = []
        checks: list[ServerCheck] = []
        for name, (addresses, why) in zip(names, found):
            if not addresses:
                checks.append(ServerCheck(Server(name, ""), "no-address", why))
            servers += [Server(name, a) for a in addresses if Server(name, a) not in servers]
        return servers, checks

    async def delegation(self, domain: str) -> tuple[tuple[str, ...], str]:
        """The NS names the parent zone's servers hand out for ``domain`` (a referral): the
        only way to name the servers of a lame delegation, which no resolver will answer for."""
        parent = domain.split(".", 1)[1] if domain.count(".") > 1 else "."
        while True:
            found = await self.resolve(parent, "NS")
            if found.state == "other":
                break
            if parent == "." or found.state not in ("nodata", "nxdomain"):
                return (), f"the parent zone's servers could not be found ({parent} NS: {describe(found)})"
            parent = parent.split(".", 1)[1] if parent.count(".") > 1 else "."
        servers, _ = await self._servers(found.values)
        reasons = []
        for server in servers:
            answer = await self.dispatcher.ask(target(domain, "NS"), Resolver(server.address, server.port, group=PARENT))
            if answer.state == "other":
                return answer.values, ""
            if answer.state == "nxdomain":
                return (), f"the parent zone {parent} has no such domain (NXDOMAIN from {server.label})"
            reasons.append(f"{server.label}: {describe(answer)}")
        return (), f"the parent zone {parent}'s servers give no delegation ({'; '.join(reasons) or 'no address'})"

    async def _records(self, domain: str, servers: Sequence[Server]) -> list[Lookup]:
        """The questions, asked of the first of ``servers`` (the others, which serve the
        same serial, when it fails one), then the follow-ups their answers call for."""
        names = [(domain, "apex"), (f"www.{domain}", "www"), *((f"{n}.{domain}", "name") for n in self.names)]
        asked: list[Awaitable[Lookup]] = [self._ask_zone(name, rtype, role, servers)
                                          for name, role in names for rtype in ("A", "AAAA")]
        asked.append(self._ask_zone(domain, "MX", "apex", servers))
        first = list(await asyncio.gather(*asked))
        follow: list[Awaitable[Lookup]] = []
        for lk in first:
            if lk.type == "MX" and lk.state == "other":
                for value in lk.values:
                    host = value.split()[-1]
                    if host == ".":
                        continue  # a null MX (RFC 7505): the domain takes no mail
                    follow += self._host(domain, host, "mx", f"MX {value}", servers)
        for name, role in names:
            pair = [lk for lk in first if lk.name == name and lk.type in ("A", "AAAA")]
            if all(lk.state == "nodata" for lk in pair):  # a CNAME leaving the zone answers A with no A
                follow.append(self._cname(domain, name, role, servers))
        more = list(await asyncio.gather(*follow))
        cnames = [lk for lk in more if lk.type == "CNAME" and lk.state == "other" and lk.values]
        last = await asyncio.gather(*(lk2 for lk in cnames
                                      for lk2 in self._host(domain, lk.values[0], "cname",
                                                            f"CNAME {lk.name} -> {lk.values[0]}", servers)))
        return first + [lk for lk in more if lk.type != "CNAME" or lk.state not in ANSWERS] + list(last)

    def _host(self, domain: str, host: str, role: str, via: str, servers: Sequence[Server]) -> list[Awaitable[Lookup]]:
        if host == domain or host.endswith("." + domain):
            return [self._ask_zone(host, rtype, role, servers, via) for rtype in ("A", "AAAA")]
        return [self._ask_resolver(host, rtype, role, via) for rtype in ("A", "AAAA")]

    async def _cname(self, domain: str, name: str, role: str, servers: Sequence[Server]) -> Lookup:
        return await self._ask_zone(name, "CNAME", role, servers)

    async def _ask_zone(self, name: str, rtype: str, role: str, servers: Sequence[Server], via: str = "") -> Lookup:
        answer: Answer | None = None
        used = servers[0]
        for server in servers:
            used = server
            answer = await self.dispatcher.ask(target(name, rtype), authoritative(server))
            if answer.state in ANSWERS:
                break
        assert answer is not None
        return Lookup(name, rtype, role, _state(answer), answer.values, used.label, via, answer.detail)

    async def _ask_resolver(self, name: str, rtype: str, role: str, via: str) -> Lookup:
        answer = await self.resolve(name, rtype)
        return Lookup(name, rtype, role, answer.state, answer.values, source(answer), via, answer.detail)


def authoritative(server: Server) -> Resolver:
    """The engine's view of a server: recursion off, the AA flag required. No name, so
    that one address under two NS names is one lane with one limit."""
    return Resolver(server.address, server.port, group=AUTHORITATIVE)


def server_check(server: Server, answer: Answer) -> ServerCheck:
    """A server's SOA answer: ``ok`` with its serial, or what stops it serving the domain."""
    if answer.state == "other":
        serial = None
        try:
            serial = int(answer.values[0].split()[2])
        except (IndexError, ValueError):
            pass
        return ServerCheck(server, "ok", "", serial)
    return ServerCheck(server, _state(answer), "" if _state(answer) == "lame" else answer.detail)


def _state(answer: Answer) -> str:
    """The engine's ``error`` for an answer without the AA flag is a lame server."""
    return "lame" if answer.state == "error" and "AA flag" in answer.detail else answer.state


def describe(answer: Answer) -> str:
    """An answer that is not data, in a few words: ``SERVFAIL``, ``no answer after 3 tries of 2s``."""
    if answer.state == "timeout":
        return answer.detail or "no answer"
    words = {"nodata": "no such record", "nxdomain": "NXDOMAIN", "servfail": "SERVFAIL", "refused": "REFUSED"}
    text = words.get(_state(answer), _state(answer))
    detail = "" if answer.detail.startswith("rcode ") or _state(answer) == "lame" else answer.detail
    return f"{text} ({detail})" if detail and answer.state not in ("nodata", "nxdomain") else text


def source(answer: Answer) -> str:
    return f"resolver {answer.resolver.endpoint}"


async def audit_many(domains: Iterable[str], resolvers: Sequence[Resolver], names: Sequence[str], limits: Limits,
                     emit: Callable[[Observation], None], window: int = 500) -> int:
    """Observe every domain, ``window`` at a time, handing each observation to ``emit`` as
    it is complete (in completion order). Returns the number of questions sent."""
    dispatcher = Dispatcher(limits)
    auditor = Auditor(resolvers, names, dispatcher)
    slots = asyncio.Semaphore(window)
    running: set[asyncio.Task[None]] = set()

    async def one(domain: str) -> None:
        try:
            observation = await auditor.observe(domain)
        except Exception as exc:  # noqa: BLE001 - one domain's surprise must not end the audit
            observation = Observation(domain, problem=f"unexpected failure: {type(exc).__name__}: {exc}")
        finally:
            slots.release()
        emit(observation)

    for domain in domains:
        await slots.acquire()
        task = asyncio.ensure_future(one(domain))
        running.add(task)
        task.add_done_callback(running.discard)
    if running:
        await asyncio.gather(*running)
    return dispatcher.sent
