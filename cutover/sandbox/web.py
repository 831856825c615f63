"""The demo's new web server: HTTP and HTTPS on a loopback address, for ``cutover check``.

A readiness check connects to the new server's address with the site's name as Host and
SNI and judges the page and the certificate. For the demo to show a real check (not one
skipped because the new address is a documentation address), the new server must exist:
this one serves a page for any name on a loopback address, over HTTP and over TLS with
``cutover/data/demo-web.pem``: a self-signed certificate for ``demo.example`` and
``www.demo.example``, valid for a century, whose key ships with it. It is not a secret:
it protects nothing but a page on 127.0.0.x, and the demo's plan trusts exactly it
(``ready.ca_file``).
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path


def certificate_files() -> tuple[Path, Path]:
    """The demo certificate and its key, as files (``ready.ca_file`` names the first)."""
    data = resources.files("cutover").joinpath("data")
    return Path(str(data.joinpath("demo-web.pem"))), Path(str(data.joinpath("demo-web.key")))


class _Page(BaseHTTPRequestHandler):
    server_version = "cutover-demo"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        host = (self.headers.get("Host") or "").split(":")[0]
        body = f"<!DOCTYPE html>\n<title>{host}</title>\n<h1>{host}, on its new server</h1>\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Quiet: the demo narrates; requests are not news."""


class DemoWebServer:
    """HTTP on ``http_port`` and HTTPS on ``https_port`` of ``address``, in threads."""

    def __init__(self, address: str) -> None:
        cert, key = certificate_files()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self._http = ThreadingHTTPServer((address, 0), _Page)
        self._https = ThreadingHTTPServer((address, 0), _Page)
        self._https.socket = context.wrap_socket(self._https.socket, server_side=True)
        self.address = address
        self.ca_file = str(cert)
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True, name="demo-web") for s in (self._http, self._https)]
        for t in self._threads:
            t.start()

    @property
    def http_port(self) -> int:
        return int(self._http.server_address[1])

    @property
    def https_port(self) -> int:
        return int(self._https.server_address[1])

    def stop(self) -> None:
        for server in (self._http, self._https):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> "DemoWebServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
