"""A fleet of fast, delayed, lossy fake resolvers in a child process, for benchmarks.

``tests/integration/servers/dnsfake.py`` parses every query and builds every reply
with dnspython, which costs more CPU per query than the client being measured; at
thousands of queries per second the fake would be the bottleneck and the figures
would describe it. Here each distinct query shape (flags, question, EDNS) is parsed
and answered by dnspython once; later queries of the same shape get the cached reply
with their own message id patched in. Replies are still real dnspython messages.

Each endpoint answers after its own delay and may drop a share of the queries it
receives (chosen by a seeded random generator, so runs are repeatable). All endpoints
share one asyncio loop in the child, so the parent process is measured alone.

Run by ``fleet()``; the protocol on the child's stdin is one JSON spec line, then
``count`` (query counts per endpoint), ``drop P`` (set the drop share of the lossy
endpoints) or EOF (stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

#: Where the fleet listens when it may bind port 53 (octodns-report only speaks to port 53):
#: an unusual corner of 127/8 so that other loopback servers on this machine are not in the way.
PORT53_NET = "127.53.0."


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    delay: float
    lossy: bool


class _Answers:
    """Replies by query shape: parsed and built by dnspython once per shape."""

    def __init__(self, origin: str, records: dict[str, tuple[int, list[str]]]) -> None:
        self.origin = origin
        self.records = {name.lower(): v for name, v in records.items()}
        self.cache: dict[bytes, bytes] = {}

    def reply(self, data: bytes) -> bytes | None:
        key = data[2:4] + data[12:]
        wire = self.cache.get(key)
        if wire is None:
            wire = self._build(data)
            if wire is None:
                return None
            self.cache[key] = wire
        return data[:2] + wire

    def _build(self, data: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - a fake resolver ignores what it cannot read
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        if query.question:
            q = query.question[0]
            name = q.name.to_text().lower()
            found = self.records.get(name)
            if found is not None and q.rdtype == dns.rdatatype.A:
                ttl, values = found
                response.answer.append(dns.rrset.from_text_list(q.name, ttl, dns.rdataclass.IN, q.rdtype, values))
            elif found is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()[2:]


class _Resolver(asyncio.DatagramProtocol):
    def __init__(self, answers: _Answers, endpoint: Endpoint, rng: random.Random, drop: list[float]) -> None:
        self.answers, self.endpoint, self.rng, self.drop = answers, endpoint, rng, drop
        self.transport: asyncio.DatagramTransport | None = None
        self.queries = 0
        self.loop = asyncio.get_event_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.queries += 1
        if self.endpoint.lossy and self.drop[0] and self.rng.random() < self.drop[0]:
            return
        wire = self.answers.reply(data)
        if wire is not None:
            self.loop.call_later(self.endpoint.delay, self._send, wire, addr)

    def _send(self, wire: bytes, addr: tuple) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)


async def _serve(spec: dict) -> None:
    loop = asyncio.get_running_loop()
    answers = _Answers(spec["origin"], {n: (ttl, v) for n, ttl, v in spec["records"]})
    drop = [float(spec.get("drop", 0.0))]
    rng = random.Random(spec.get("seed", 53))
    protocols = []
    bound = []
    for host, port, delay, lossy in spec["endpoints"]:
        endpoint = Endpoint(host, port, delay, lossy)
        transport, protocol = await loop.create_datagram_endpoint(
            lambda e=endpoint: _Resolver(answers, e, rng, drop), local_addr=(host, port), family=socket.AF_INET
        )
        protocols.append(protocol)
        bound.append([host, transport.get_extra_info("sockname")[1]])
    print(json.dumps(bound), flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line.startswith("drop"):
            drop[0] = float(line.split()[1])
            print(json.dumps({"drop": drop[0]}), flush=True)
        else:
            print(json.dumps([p.queries for p in protocols]), flush=True)


# --------------------------------------------------------------------------- parent side


@dataclass
class Fleet:
    process: subprocess.Popen
    endpoints: list[tuple[str, int]]
    delays: list[float]
    lossy: list[bool]

    def _ask(self, line: str):  # noqa: ANN202
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def queries(self) -> list[int]:
        return self._ask("count")

    def cpu_seconds(self) -> float:
        """CPU time (user+sys) the fleet process has used: it shares the machine with the client."""
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def set_drop(self, share: float) -> None:
        self._ask(f"drop {share}")

    @property
    def port53(self) -> bool:
        return all(port == 53 for _, port in self.endpoints)


def can_bind_port53(count: int) -> bool:
    """Root may bind 127.53.0.x:53; check the first and last before promising it."""
    for host in (f"{PORT53_NET}1", f"{PORT53_NET}{count}"):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((host, 53))
        except OSError:
            return False
    return True


def delays_for(count: int, low: float, high: float) -> list[float]:
    """Delays spread evenly from ``low`` to ``high``: the slowest resolver is exactly ``high``."""
    if count == 1:
        return [high]
    return [round(low + (high - low) * i / (count - 1), 4) for i in range(count)]


@contextlib.contextmanager
def fleet(
    count: int,
    records: dict[str, tuple[int, list[str]]],
    *,
    origin: str = "bench.example.",
    low: float = 0.1,
    high: float = 0.3,
    lossy_every: int = 10,
    drop: float = 0.0,
    port53: bool = True,
) -> Iterator[Fleet]:
    """``count`` resolvers answering ``records`` (absolute name -> (ttl, A values)).

    Every ``lossy_every``-th resolver drops ``drop`` of its queries (changeable later
    with ``Fleet.set_drop``). With ``port53`` and the right to bind it, the resolvers
    listen on 127.53.0.1..N port 53; otherwise on 127.0.0.1 with OS-chosen ports.
    """
    use53 = port53 and count < 255 and can_bind_port53(count)
    delays = delays_for(count, low, high)
    lossy = [lossy_every > 0 and i % lossy_every == lossy_every - 1 for i in range(count)]
    endpoints = [[f"{PORT53_NET}{i + 1}" if use53 else "127.0.0.1", 53 if use53 else 0, delay, lose]
                 for i, (delay, lose) in enumerate(zip(delays, lossy))]
    spec = {"origin": origin, "records": [[n, ttl, v] for n, (ttl, v) in records.items()], "endpoints": endpoints, "drop": drop}
    process = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps(spec) + "\n")
        process.stdin.flush()
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the benchmark DNS fleet did not start")
        yield Fleet(process, [(h, p) for h, p in json.loads(line)], delays, lossy)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    asyncio.run(_serve(spec))


if __name__ == "__main__":
    main()
