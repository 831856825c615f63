"""A real PowerDNS Authoritative server (Debian pdns-server + pdns-backend-sqlite3).

One server per test session, started as a plain foreground process with its own
config dir, SQLite database and ports in a temp folder; each test gets a fresh zone
created through the HTTP API. Caches are switched off so that a DNS query right after
an API change sees the new data, as it would after the cache TTL in production.
"""

from __future__ import annotations

import itertools
import secrets
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.integration.servers import free_port, need_binary, stop_process, wait_for_tcp

SCHEMA_CANDIDATES = (
    "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql",
    "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql",
)

_zone_numbers = itertools.count(1)


@dataclass(frozen=True)
class PdnsServer:
    """Where the running server listens, and the API key it accepts."""

    api_url: str
    api_key: str
    dns_port: int
    version: str
    process: subprocess.Popen

    @property
    def zones_url(self) -> str:
        return f"{self.api_url}/api/v1/servers/localhost/zones"

    def _headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}

    def create_zone(self, name: str) -> str:
        """Create a Native zone holding only SOA and NS (``ns1.<zone>``)."""
        zone = name if name.endswith(".") else name + "."
        body = {"name": zone, "kind": "Native", "nameservers": [f"ns1.{zone}"]}
        r = requests.post(self.zones_url, json=body, headers=self._headers(), timeout=10)
        r.raise_for_status()
        return zone

    def delete_zone(self, zone: str) -> None:
        requests.delete(f"{self.zones_url}/{zone}", headers=self._headers(), timeout=10)

    def zone_json(self, zone: str) -> dict:
        r = requests.get(f"{self.zones_url}/{zone}", headers=self._headers(), timeout=10)
        r.raise_for_status()
        return r.json()

    def settings(self) -> dict[str, str]:
        """Provider settings for cutover's powerdns provider."""
        return {"url": self.api_url, "api_key": self.api_key}


def _schema() -> str:
    for path in SCHEMA_CANDIDATES:
        if Path(path).exists():
            return Path(path).read_text()
    pytest.fail("the gsqlite3 schema is missing: install pdns-backend-sqlite3 (see .ci/run)")


def _version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    text = out.stdout + out.stderr
    for line in text.splitlines():
        if "PowerDNS Authoritative Server" in line:
            return line.split("Server", 1)[1].split("(")[0].strip()
    return "unknown"


def _wait_for_api(url: str, key: str, proc: subprocess.Popen, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"pdns_server exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            r = requests.get(f"{url}/api/v1/servers/localhost", headers={"X-API-Key": key}, timeout=1)
            if r.status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    pytest.fail(f"pdns_server API not ready after {timeout}s:\n{log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def pdns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PdnsServer]:
    binary = need_binary("pdns_server", "pdns-server")
    version = _version(binary)
    major_minor = tuple(int(x) for x in version.split(".")[:2] if x.isdigit())
    if major_minor and major_minor < (4, 7):
        pytest.fail(f"PowerDNS {version} is too old for these tests (need 4.7 or later)")
    root = tmp_path_factory.mktemp("pdns")
    db = root / "pdns.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.executescript(_schema())
    dns_port, web_port = free_port(), free_port()
    api_key = secrets.token_hex(16)
    conf = {
        "launch": "gsqlite3",
        "gsqlite3-database": str(db),
        "local-address": "127.0.0.1",
        "local-port": dns_port,
        "api": "yes",
        "api-key": api_key,
        "webserver": "yes",
        "webserver-address": "127.0.0.1",
        "webserver-port": web_port,
        "webserver-allow-from": "127.0.0.0/8",
        "daemon": "no",
        "guardian": "no",
        "disable-syslog": "yes",
        "socket-dir": str(root),
        "cache-ttl": 0,
        "negquery-cache-ttl": 0,
        "query-cache-ttl": 0,
        "consistent-backends": "yes",
        "loglevel": 4,
    }
    (root / "pdns.conf").write_text("".join(f"{k}={v}\n" for k, v in conf.items()))
    log = root / "pdns.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [binary, f"--config-dir={root}"], stdout=out, stderr=subprocess.STDOUT, cwd=root
        )
    url = f"http://127.0.0.1:{web_port}"
    try:
        wait_for_tcp(web_port, timeout=20)
        _wait_for_api(url, api_key, proc, log)
        yield PdnsServer(url, api_key, dns_port, version, proc)
    finally:
        stop_process(proc)


@pytest.fixture
def pdns_zone(pdns_server: PdnsServer) -> Iterator[str]:
    """A fresh zone on the shared server, deleted afterwards."""
    zone = pdns_server.create_zone(f"z{next(_zone_numbers)}-{secrets.token_hex(3)}.conformance.test.")
    yield zone
    pdns_server.delete_zone(zone)
