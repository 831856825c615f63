"""Real servers for the integration tests, each started on loopback and stopped after.

Each module here (``bind``, ``unbound``, ``pdns``, ``moto``, ...) offers fixtures that a
test module imports by name. Servers are Debian packages started as plain processes
with a private config in a temporary folder: no root services, no fixed ports.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Sequence

import pytest


class ZoneNames:
    """A test zone's name as a server's config needs it: the absolute origin and a file name.
    Mixed into each server's zone description (``name`` is its first field)."""

    name: str

    @property
    def origin(self) -> str:
        return self.name if self.name.endswith(".") else self.name + "."

    @property
    def file_name(self) -> str:
        return self.origin.rstrip(".") + ".zone"


def serve_http(serve: Callable[[BaseHTTPRequestHandler, str], None],
               methods: Sequence[str] = ("GET", "POST")) -> ThreadingHTTPServer:
    """A local HTTP API on 127.0.0.1 (a free port) for the fake services: every request of
    ``methods`` goes to ``serve(handler, method)``, in its own thread, without logging."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms wait between them

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

    for method in methods:
        setattr(Handler, f"do_{method}", lambda self, m=method: serve(self, m))
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd


def stop_http(httpd: ThreadingHTTPServer | None) -> None:
    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A loopback port free for both UDP and TCP right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free loopback port")


def wait_for_tcp(port: int, timeout: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def need_binary(name: str, package: str) -> str:
    """The path of a server binary; the test fails (not skips) when the package is missing,
    because CI installs it and a silent skip would hide a broken set-up."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if not path:
        pytest.fail(f"{name} not found: install the Debian package {package} (see .ci/run)")
    return path


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """Terminate a server, then kill it if it does not go: a test must never leave one behind."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
