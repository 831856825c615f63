"""Real servers for the integration tests, each started on loopback and stopped after.

Each module here (``bind``, ``unbound``, ``pdns``, ``moto``, ...) offers fixtures that a
test module imports by name. Servers are Debian packages started as plain processes
with a private config in a temporary folder: no root services, no fixed ports.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence, TypeVar

import pytest

READY_TIMEOUT = 20.0


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


# --------------------------------------------------------------------------- daemons in a temporary directory


@dataclass
class DaemonServer:
    """A Debian daemon run as a plain foreground process with everything it reads and writes
    in one temporary directory (nginx, Unbound, Postfix): where it listens, its log,
    readiness, stop and removal. Each server's dataclass adds its ports and ``answers``."""

    directory: Path
    address: str = field(default="127.0.0.1", kw_only=True)
    process: subprocess.Popen | None = field(default=None, repr=False, kw_only=True)
    log_files: ClassVar[tuple[str, ...]] = ()  # in ``directory``: what ``log()`` reads
    ready_pause: ClassVar[float] = 0.05  # between two readiness checks
    stop_timeout: ClassVar[float] = 10.0

    def answers(self) -> bool:
        """One readiness check: the server does its job now."""
        raise NotImplementedError

    def log(self) -> str:
        paths = (self.directory / name for name in self.log_files)
        return "\n".join(path.read_text(errors="replace") for path in paths if path.exists())

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> bool:
        """Whether the server answers within ``timeout`` (False at once when it exits)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False
            if self.answers():
                return True
            time.sleep(self.ready_pause)
        return False

    def stop(self) -> None:
        stop_process(self.process, timeout=self.stop_timeout)

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


Daemon = TypeVar("Daemon", bound=DaemonServer)


def spawn(command: Sequence[str], directory: Path, output: str | None = None) -> subprocess.Popen:
    """Start a daemon in ``directory`` with no input, its output (stdout and stderr) in the
    file ``output`` there, or nowhere."""
    with open(directory / output, "wb") if output else contextlib.nullcontext(subprocess.DEVNULL) as out:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=directory)


def start_daemon(name: str, launch: Callable[[], Daemon], clash: str | None = None, tries: int = 3) -> Daemon:
    """A daemon started by ``launch`` (free ports, config, ``spawn``) and ready.

    The free port another process took meanwhile is a port clash: a server that is not
    ready is stopped and launched again (up to ``tries`` times) when its log says ``clash``
    (any failure when ``clash`` is None). A server that does not start is removed, and a
    RuntimeError shows the end of its log."""
    output = ""
    for _ in range(tries):
        server = launch()
        if server.wait_ready():
            return server
        server.stop()
        output = server.log()
        if clash is not None and clash not in output.lower():  # not a port clash: no point retrying
            server.remove()
            raise RuntimeError(f"{name} did not start:\n{output[-3000:]}")
    server.remove()
    raise RuntimeError(f"{name} did not start after {tries} tries:\n{output[-3000:]}")


def started_servers(start: Callable[..., Daemon]) -> Iterator[Callable[..., Daemon]]:
    """A fixture's body: ``start`` for one test; every server it started removed after."""
    started: list[Daemon] = []

    def make(*args: Any, **kwargs: Any) -> Daemon:
        server = start(*args, **kwargs)
        started.append(server)
        return server

    yield make
    for server in started:
        server.remove()
