"""One round's queries in flight: shared UDP sockets, suspicious matching, retries, deadline.

Opening and closing a socket per query, and an asyncio task per query, cost more than
the exchange itself, so a round holds a few unconnected UDP sockets (``MIN_SOCKETS`` to
``MAX_SOCKETS`` per address family, never more than the queries it may have in flight,
each bound to its own random source port) and sends every query from one of them,
chosen at random, with a fresh random id. A reply is taken only when it arrives on the socket
the query left from, from the address and port it was sent to, with the query's id,
and (checked by ``fastpath`` byte for byte, or by dnspython's ``is_response``) with the
same question. Anything else is a stray and is ignored, as before.

A query lives until a reply is taken, its last attempt times out, or the round's hard
deadline passes; a retransmission repeats the same bytes (same id, same socket), so a
late answer to the first transmission is still taken. Garbage from the right source is
remembered and reported as ``malformed`` if nothing valid follows. A truncated reply
is asked again over TCP in a small thread pool (rare; dnspython's blocking client).

``Flight`` does no waiting itself: a driver (``engine``'s epoll loop, or asyncio's
event loop for ``query_round``) tells it when a socket is readable and when time has
passed, and asks it when to wake next. All times are ``time.monotonic()``.
"""

from __future__ import annotations

import copy
import heapq
import ipaddress
import math
import os
import socket
from array import array
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Sequence

import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.query

from cutover.observe import fastpath
from cutover.observe.classify import read_response
from cutover.observe.wire import PAYLOAD, Template
from cutover.observe.types import NON_RECURSIVE, Answer, Target
from cutover.resolvers import Resolver

#: Shared sockets per address family: one for each ``PER_SOCKET`` queries the round may
#: have in flight, at least ``MIN_SOCKETS`` (never more than that window), at most
#: ``MAX_SOCKETS``. Few sockets cost no safety: a blind spoofer must still hit one of the
#: (random port, random id) pairs in flight, whose number is the number of queries in
#: flight, whether they share sockets or not. Few sockets are faster (more replies read
#: per wake-up: 60,000 vs 40,000 a second with 4 vs 64, benchmarks/README.md); each must
#: hold its share of a burst of replies within a default-sized receive buffer.
MIN_SOCKETS, PER_SOCKET, MAX_SOCKETS = 4, 128, 16
#: Queries in flight to one server at most (dnsperf's default is 100): a burst much larger
#: than this overflows a default-sized server socket buffer on a busy machine, and each
#: dropped query then costs a whole timeout (benchmarks/README.md, "The engine").
PER_SERVER = 128
#: Questions a second to one public resolver (the ``public`` catalogue's group) at most,
#: after a burst of ``PUBLIC_BURST`` seconds' worth. Public resolvers limit each client:
#: Google Public DNS throttles one address above 1,500 queries a second ("Google Public
#: DNS for ISPs"), and the others do not say where they start. A watch round of a large
#: fleet asks each resolver once per record; unpaced, 128 in flight at 10-30 ms would be
#: 4,000-12,000 a second to 8.8.8.8, and throttled answers hold the verdict back. The
#: operator's own resolvers, authoritative servers and loopback are not paced.
PUBLIC_RATE = 500.0
PUBLIC_BURST = 0.5
#: The resolver groups paced at ``PUBLIC_RATE``: the public catalogue's.
PACED_GROUPS = frozenset({"public"})
#: Threads for TCP retries after a truncated UDP answer (rare).
TCP_THREADS = 4
#: Receive buffer asked for each socket, so a burst of replies is not dropped by the kernel.
RCVBUF = 1 << 20

_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


class _Endpoint:
    """A server as the sockets see it: where to send, and the (address, port) replies come
    from; and, within one flight, its queries in flight and the pairs waiting for room."""

    __slots__ = ("resolver", "family", "dest", "key", "address", "recursive", "problem", "inflight", "waiting",
                 "interval", "next_at", "paused")

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.inflight = 0
        self.waiting: deque[int] = deque()
        self.interval = 1.0 / PUBLIC_RATE if resolver.group in PACED_GROUPS else 0.0  # between first attempts
        self.next_at = -math.inf  # when the next pair may start (paced endpoints)
        self.paused = False  # waiting for ``next_at`` (a release is scheduled)
        self.recursive = resolver.group not in NON_RECURSIVE
        self.problem = ""
        try:
            self.family = dns.inet.af_for_address(resolver.address)
            self.dest = dns.inet.low_level_address_tuple((resolver.address, resolver.port), self.family)
        except (ValueError, OSError) as exc:
            self.family, self.dest, self.problem = socket.AF_INET, ("", 0), f"{type(exc).__name__}: {exc}"
        try:  # the text form recvfrom() reports, so that the usual reply is matched without parsing
            self.address = socket.inet_ntop(self.family, socket.inet_pton(self.family, resolver.address))
        except (ValueError, OSError):
            self.address = resolver.address
        self.key = (self.address, resolver.port)


class _Socket:
    """One shared socket: its queries in flight by (id, source), and what came from whom."""

    __slots__ = ("sock", "fd", "v6", "pending", "strays", "garbage")

    def __init__(self, family: int) -> None:
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            except OSError:
                pass  # the system's default then
            # Blocking for sendto (a full send buffer waits instead of failing); every read
            # is MSG_DONTWAIT. Bound to port 0: the kernel picks a random ephemeral port.
            self.sock.bind(("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0))
        except OSError:
            self.sock.close()
            raise
        self.fd = self.sock.fileno()
        self.v6 = family == socket.AF_INET6
        self.pending: dict[tuple[int, tuple[str, int]], _Query] = {}
        self.strays: dict[str, int] = {}  # by source address: ignored packets, for the timeout's detail
        self.garbage: dict[tuple[str, int], deque[tuple[int, str]]] = {}  # by endpoint: (seq, why)


class _Query:
    """One pair in flight. ``strays``, ``malformed`` (with ``malformed_seq``) and ``tcp``
    are set only when something unusual happens (``getattr`` with a default reads them)."""

    __slots__ = ("index", "target", "endpoint", "template", "sock", "key", "qid", "started", "attempt",
                 "stray_base", "seq", "strays", "malformed", "malformed_seq", "tcp")
    strays: int
    malformed: str
    malformed_seq: int
    tcp: Future[dns.message.Message]

    def __init__(self, index: int, target: Target, endpoint: _Endpoint, template: Template, sock: _Socket,
                 key: tuple[int, tuple[str, int]], started: float, seq: int) -> None:
        self.index, self.target, self.endpoint, self.template = index, target, endpoint, template
        self.sock, self.key, self.qid, self.started, self.seq = sock, key, key[0], started, seq
        self.attempt = 0
        self.stray_base = sock.strays.get(endpoint.address, 0) if sock.strays else 0

    def wire(self) -> bytes:
        return self.qid.to_bytes(2, "big") + self.template.tail

    def query(self) -> dns.message.Message:
        """The dnspython message with this query's id (for ``is_response`` and TCP)."""
        message = copy.copy(self.template.message)  # shallow: the question section is shared, never changed
        message.id = self.qid
        return message


class Flight:
    """The pairs of one round (or one process's share of it) and their answers.

    ``pairs[i]`` is asked in the order ``order`` gives, at most ``window`` at once;
    ``answers[i]`` is its answer once ``finished``. ``resolvers`` names every resolver
    the pairs use (the sockets are opened for their address families up front).
    """

    def __init__(self, pairs: Sequence[tuple[Target, Resolver]], order: Iterator[int], resolvers: Iterable[Resolver], *,
                 timeout: float, retries: int, deadline: float, window: int, now: float,
                 per_server: int = PER_SERVER) -> None:
        self.pairs, self.order = pairs, order
        self.timeout, self.retries, self.deadline = timeout, retries, deadline
        self.window = max(1, window)
        self.per_server = max(1, per_server)
        self.waiting = 0  # pairs taken from ``order`` whose server had no room yet
        self._ready: deque[_Endpoint] = deque()  # servers with room again and pairs waiting
        self.answers: list[Answer | None] = [None] * len(pairs)
        self.started = bytearray(len(pairs))
        self.unanswered = len(pairs)
        self.inflight = 0
        self.timers: deque[tuple[float, _Query, int]] = deque()  # by expiry: one timeout for all
        self.tcp: list[_Query] = []
        self.wake: Callable[[], None] | None = None  # set by a driver that can be woken from a thread
        self.by_fd: dict[int, _Socket] = {}
        self._endpoints: dict[int, _Endpoint] = {}  # by id() of the resolver
        self._templates: dict[tuple[int, bool], Template] = {}  # by id() of the target, recursion
        self._sockets: dict[int, list[_Socket]] = {}
        self._random = _random16()
        self._seq = 0  # orders the unusual events (garbage, starts) for ``_malformed``
        self._pool: ThreadPoolExecutor | None = None
        for r in resolvers:
            self._endpoint(r)
        self._releases: list[tuple[float, int, _Endpoint]] = []  # paced servers' next starts, a heap
        self.deadline += self._paced_span(pairs)
        self._by_key = {ep.key: ep for ep in reversed(list(self._endpoints.values()))}
        self._addresses = {ep.address for ep in self._endpoints.values()}
        # more in flight than every server's share would only queue pairs (one server: 128)
        self.window = min(self.window, self.per_server * max(1, len(self._by_key)))
        per_family = min(self.window, MAX_SOCKETS, max(MIN_SOCKETS, -(-self.window // PER_SOCKET)))
        self._no_socket: dict[int, str] = {}  # address family -> why no socket could be opened
        for family in sorted({ep.family for ep in self._endpoints.values() if not ep.problem}):
            socks: list[_Socket] = []
            try:
                while len(socks) < per_family:
                    socks.append(_Socket(family))
            except OSError as exc:  # e.g. out of file descriptors: fewer sockets, or none
                if not socks:
                    self._no_socket[family] = f"cannot open a socket ({_os_reason(exc)})"
                    continue
            self._sockets[family] = socks
            self.by_fd.update((sock.fd, sock) for sock in socks)
        self.fill(now)

    # ----------------------------------------------------------------- the driver's calls

    @property
    def finished(self) -> bool:
        return self.unanswered == 0

    def next_wake(self) -> float:
        """When ``expire`` next has something to do (a timeout, a paced server's next
        start, or the deadline)."""
        wake = min(self.timers[0][0], self.deadline) if self.timers else self.deadline
        return min(wake, self._releases[0][0]) if self._releases else wake

    def expire(self, now: float) -> None:
        """Retransmit or give up the attempts whose time is up; end the round at its deadline."""
        if now >= self.deadline:
            self._abandon()
            return
        while self._releases and self._releases[0][0] <= now:
            ep = heapq.heappop(self._releases)[2]
            ep.paused = False
            if ep.waiting:
                self._ready.append(ep)
        timers = self.timers
        while timers and timers[0][0] <= now:
            _, q, attempt = timers.popleft()
            if q.attempt != attempt:
                continue  # answered (attempt -1), or already retransmitted
            malformed = self._malformed(q)
            if malformed or attempt >= self.retries:
                self._fail(q, now, malformed)
                continue
            q.attempt += 1
            if self._send(q, now):
                timers.append((now + self.timeout, q, q.attempt))
        self.fill(now)

    def readable(self, fd: int, now: float) -> None:
        """Read what the socket holds; match each packet to its query by (id, source)."""
        s = self.by_fd[fd]
        pending, recv, v6 = s.pending, s.sock.recvfrom, s.v6
        read, answers = fastpath.read, self.answers
        while True:
            try:
                data, source = recv(65535, _DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break  # e.g. an ICMP error surfaced on the socket: nothing to read, keep listening
            q = pending.get(((data[0] << 8) | data[1], source[:2] if v6 else source)) if len(data) >= 2 else None
            if q is None:
                self._unmatched(s, data, source, now)
                continue
            answer = None
            if len(data) <= PAYLOAD:
                try:
                    answer = read(data, q.template.question, q.target, q.endpoint.resolver, now - q.started)
                except Exception:  # noqa: BLE001 - a bug here must not cost the answer: dnspython reads it
                    answer = None
            if answer is None:
                self._reply(q, data, now)
                continue
            del pending[q.key]  # the usual reply, taken: as _done, inline
            q.attempt = -1
            self.inflight -= 1
            ep = q.endpoint
            ep.inflight -= 1
            if ep.waiting and ep.inflight == self.per_server - 1:
                self._ready.append(ep)
            answers[q.index] = answer
            self.unanswered -= 1
        self.fill(now)

    def tcp_done(self, now: float) -> None:
        """Collect the TCP retries that have finished (the driver calls this when woken, or
        from time to time while ``tcp`` is not empty)."""
        for q in [q for q in self.tcp if q.tcp.done()]:
            self.tcp.remove(q)
            if q.attempt == -2:
                self._tcp_answer(q, now)
        self.fill(now)

    def close(self) -> list[Answer]:
        """Close the sockets; pairs left unanswered (the deadline) get their timeout."""
        self._abandon()
        for socks in self._sockets.values():
            for s in socks:
                s.sock.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        return self.answers  # type: ignore[return-value]  # every entry is set by _abandon

    # ----------------------------------------------------------------- starting queries

    def fill(self, now: float) -> None:
        """Start pairs until ``window`` are in flight (none once the deadline has passed),
        at most ``per_server`` to one server: a pair for a busy server waits for it (the
        first waiting ones go first), and at most ``window`` pairs wait, so that a round
        against one server does not read its whole order ahead."""
        while self._ready and self.inflight < self.window and now < self.deadline:
            ep = self._ready.popleft()
            while ep.waiting and ep.inflight < self.per_server and self.inflight < self.window and ep.next_at <= now:
                self.waiting -= 1
                self._start(ep.waiting.popleft(), now)
            if ep.waiting and ep.inflight < self.per_server:
                if ep.next_at > now:
                    self._pause(ep)
                    continue
                self._ready.appendleft(ep)  # the window is full: this server goes first next time
                return
        while self.inflight < self.window and self.waiting < self.window and now < self.deadline:
            i = next(self.order, None)
            if i is None:
                return
            resolver = self.pairs[i][1]
            ep = self._endpoints.get(id(resolver)) or self._endpoint(resolver)
            if ep.inflight >= self.per_server or ep.next_at > now:
                ep.waiting.append(i)
                self.waiting += 1
                if ep.next_at > now:
                    self._pause(ep)
            else:
                self._start(i, now)

    def _pause(self, ep: _Endpoint) -> None:
        """A paced server has pairs waiting: take it up again at its next start."""
        if not ep.paused:
            ep.paused = True
            self._seq += 1
            heapq.heappush(self._releases, (ep.next_at, self._seq, ep))

    def _paced_span(self, pairs: Sequence[tuple[Target, Resolver]]) -> float:
        """How much longer than unpaced a round may take: the most pairs any paced server
        has, at its rate (zero when none is paced, without counting)."""
        paced = {key: ep.interval for key, ep in self._endpoints.items() if ep.interval}
        if not paced:
            return 0.0
        counts = Counter(id(r) for _, r in pairs)
        return max(counts.get(key, 0) * interval for key, interval in paced.items())

    def _start(self, i: int, now: float) -> None:
        target, resolver = self.pairs[i]
        self.started[i] = 1
        ep = self._endpoints.get(id(resolver)) or self._endpoint(resolver)
        if ep.interval:  # a token bucket: PUBLIC_BURST seconds' worth may start at once
            ep.next_at = max(ep.next_at, now - PUBLIC_BURST) + ep.interval
        template = self._templates.get((id(target), ep.recursive))
        if template is None or ep.problem:
            template = self._template(i, target, ep)
            if template is None:
                return
        socks = self._sockets[ep.family]
        s = socks[next(self._random) % len(socks)]
        key = (next(self._random), ep.key)
        while key in s.pending:
            key = (next(self._random), ep.key)
        q = _Query(i, target, ep, template, s, key, now, self._seq)
        s.pending[key] = q
        self.inflight += 1
        ep.inflight += 1
        if self._send(q, now):
            self.timers.append((now + self.timeout, q, 0))

    def _template(self, i: int, target: Target, ep: _Endpoint) -> Template | None:
        """The pair's query, built on its first use in the round; ``None`` (and the pair
        answered) when it cannot be asked at all."""
        if ep.family in self._no_socket and not ep.problem:
            self._finish(i, Answer(ep.resolver, target.key, "error", None, (), self._no_socket[ep.family]))
            return None
        problem = ep.problem or ("" if ep.family in self._sockets else "no socket for this address family")
        if not problem:
            try:
                template = self._templates[(id(target), ep.recursive)] = Template(target, ep.recursive)
                return template
            except Exception as exc:  # a name or type dnspython cannot put in a query
                problem = f"{type(exc).__name__}: {exc}"
        self._finish(i, Answer(ep.resolver, target.key, "error", None, (), f"unexpected failure: {problem}"))
        return None

    def _send(self, q: _Query, now: float) -> bool:
        try:
            q.sock.sock.sendto(q.wire(), q.endpoint.dest)
        except OSError as exc:
            self._done(q, Answer(q.endpoint.resolver, q.target.key, "error", None, (),
                                 f"cannot send ({_os_reason(exc)})", now - q.started))
            return False
        return True

    def _endpoint(self, resolver: Resolver) -> _Endpoint:
        ep = self._endpoints.get(id(resolver))
        if ep is None:
            ep = self._endpoints[id(resolver)] = _Endpoint(resolver)
        return ep

    # ----------------------------------------------------------------- unusual replies

    def _reply(self, q: _Query, data: bytes, now: float) -> None:
        """A packet from the query's server with its id that the fast path did not take:
        dnspython reads it, as the engine always did."""
        ep = q.endpoint
        try:
            if len(data) > PAYLOAD:
                self._note_malformed(q, f"oversized UDP reply ({len(data)} bytes > {PAYLOAD} advertised)")
                return
            try:
                response = dns.message.from_wire(data)
            except dns.exception.DNSException as exc:
                self._note_malformed(q, f"unparseable reply ({type(exc).__name__})")
                return
            query = q.query()
            if not query.is_response(response):
                q.strays = getattr(q, "strays", 0) + 1
                return
            if response.flags & dns.flags.TC:
                self._to_tcp(q, query, now)
                return
            self._done(q, read_response(q.target, ep.resolver, response, via="udp", elapsed=now - q.started))
        except Exception as exc:  # a bug or a surprise: reported on this pair, the round goes on
            self._done(q, _unexpected(q, exc))

    def _unmatched(self, s: _Socket, data: bytes, source: Any, now: float) -> None:
        """A packet no query on this socket waits for: from another source, with another
        id, or late. Counted as a stray from its address, or remembered as garbage from
        its server, for the detail of a query to that server that then gets no answer."""
        address, port = source[0], source[1]
        ep = self._known(address, port)
        if ep is None:
            if address in self._addresses:  # the server's address, another port
                s.strays[address] = s.strays.get(address, 0) + 1
            return
        if len(data) >= 2 and (address, port) != ep.key:  # the server's address written another way
            q = s.pending.get(((data[0] << 8) | data[1], ep.key))
            if q is not None:
                self._reply(q, data, now)
                return
        why = ""
        if len(data) > PAYLOAD:
            why = f"oversized UDP reply ({len(data)} bytes > {PAYLOAD} advertised)"
        else:
            try:
                dns.message.from_wire(data)
            except dns.exception.DNSException as exc:
                why = f"unparseable reply ({type(exc).__name__})"
            except Exception:  # noqa: BLE001 - not ours to judge further: a stray
                pass
        if why:
            self._seq += 1
            s.garbage.setdefault(ep.key, deque(maxlen=8)).append((self._seq, why))
        else:
            s.strays[ep.address] = s.strays.get(ep.address, 0) + 1

    def _known(self, address: str, port: int) -> _Endpoint | None:
        ep = self._by_key.get((address, port))
        if ep is not None:
            return ep
        try:  # another text form of the same address (rare: only for packets nobody waits for)
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        for ep in self._endpoints.values():
            try:
                if ep.resolver.port == port and ipaddress.ip_address(ep.resolver.address) == ip:
                    return ep
            except ValueError:
                continue
        return None

    def _note_malformed(self, q: _Query, why: str) -> None:
        if not getattr(q, "malformed", ""):
            self._seq += 1
            q.malformed, q.malformed_seq = why, self._seq

    def _malformed(self, q: _Query) -> str:
        """The first garbage this query's server sent it (directly, or on its socket
        without a matching id) since the query started."""
        best_seq, best = getattr(q, "malformed_seq", 0), getattr(q, "malformed", "")
        if not q.sock.garbage:
            return best
        for seq, why in q.sock.garbage.get(q.endpoint.key, ()):
            if seq > q.seq and (not best or seq < best_seq):
                best_seq, best = seq, why
                break
        return best

    # ----------------------------------------------------------------- TCP after truncation

    def _to_tcp(self, q: _Query, query: dns.message.Message, now: float) -> None:
        remaining = min(self.timeout, self.deadline - now)
        if remaining <= 0:
            self._fail(q, now, "", "truncated UDP answer and no time left for TCP")
            return
        del q.sock.pending[q.key]  # no more UDP for this one
        q.attempt = -2  # over TCP: no timer applies
        if self._pool is None:
            self._pool = ThreadPoolExecutor(TCP_THREADS, thread_name_prefix="cutover-tcp")
        r = q.endpoint.resolver
        q.tcp = self._pool.submit(dns.query.tcp, query, r.address, timeout=remaining, port=r.port)
        self.tcp.append(q)
        if self.wake is not None:
            q.tcp.add_done_callback(lambda _f: self.wake() if self.wake is not None else None)

    def _tcp_answer(self, q: _Query, now: float) -> None:
        r = q.endpoint.resolver
        try:
            response = q.tcp.result()
        except dns.exception.Timeout:
            self._fail(q, now, "", "truncated UDP answer; TCP timed out")
        except dns.exception.DNSException as exc:  # unparseable, or not a response to our query
            self._fail(q, now, f"truncated UDP answer; bad TCP answer ({type(exc).__name__})")
        except (OSError, EOFError) as exc:
            self._done(q, Answer(r, q.target.key, "error", None, (),
                                 f"truncated UDP answer; TCP failed ({_os_reason(exc)})", now - q.started))
        except Exception as exc:  # noqa: BLE001
            self._done(q, _unexpected(q, exc))
        else:
            try:
                self._done(q, read_response(q.target, r, response, via="tcp", elapsed=now - q.started))
            except Exception as exc:  # noqa: BLE001
                self._done(q, _unexpected(q, exc))

    # ----------------------------------------------------------------- endings

    def _fail(self, q: _Query, now: float, malformed: str, timeout: str = "") -> None:
        r = q.endpoint.resolver
        if malformed:
            self._done(q, Answer(r, q.target.key, "malformed", None, (), malformed, now - q.started))
            return
        if not timeout:
            strays = getattr(q, "strays", 0) + q.sock.strays.get(q.endpoint.address, 0) - q.stray_base
            waited = "no answer" + (f" (ignored {strays} stray replies)" if strays else "")
            tries = f"{self.retries + 1} tries" if self.retries else "1 try"
            timeout = f"{waited} after {tries} of {self.timeout:g}s"
        self._done(q, Answer(r, q.target.key, "timeout", None, (), timeout, now - q.started))

    def _done(self, q: _Query, answer: Answer) -> None:
        q.sock.pending.pop(q.key, None)
        q.attempt = -1
        self.inflight -= 1
        ep = q.endpoint
        ep.inflight -= 1
        if ep.waiting and ep.inflight == self.per_server - 1:
            self._ready.append(ep)
        self._finish(q.index, answer)

    def _finish(self, i: int, answer: Answer) -> None:
        if self.answers[i] is None:
            self.unanswered -= 1
        self.answers[i] = answer

    def _abandon(self) -> None:
        """The deadline: whatever is in flight or never started is a timeout."""
        if self.finished:
            return
        for s in self.by_fd.values():
            s.pending.clear()
        self.timers.clear()
        self.tcp.clear()
        self._ready.clear()
        self._releases.clear()
        self.inflight = self.waiting = 0
        for ep in self._endpoints.values():
            ep.inflight = 0
            ep.waiting.clear()
        for i, answer in enumerate(self.answers):
            if answer is None:
                target, resolver = self.pairs[i]
                self.answers[i] = late(target, resolver, started=bool(self.started[i]))
        self.unanswered = 0
        self.order = iter(())


def _random16() -> Iterator[int]:
    """16-bit values from the OS's CSPRNG (ids and socket choices), drawn 4,096 at a time."""
    while True:
        yield from array("H", os.urandom(8192))


def late(target: Target, resolver: Resolver, started: bool) -> Answer:
    if started:
        return Answer(resolver, target.key, "timeout", None, (), "no answer before the round's deadline")
    return Answer(resolver, target.key, "timeout", None, (), "the round's deadline passed before this query could be sent")


def _unexpected(q: _Query, exc: BaseException) -> Answer:
    return Answer(q.endpoint.resolver, q.target.key, "error", None, (), f"unexpected failure: {type(exc).__name__}: {exc}")


def _os_reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__
