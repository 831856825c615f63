"""A real nginx (Debian ``nginx``) on loopback: the new web server the readiness checks connect to.

Each server runs ``nginx -p DIR -c DIR/nginx.conf -e DIR/error.log -g 'daemon off;'`` as a
plain foreground process with every file it reads or writes (config, certificates, pages,
pid, logs, temp folders) inside one temporary directory, listening on 127.0.0.1 only, on
a free port for HTTP and another for HTTPS. As root the workers drop to ``nobody``, so the
directory is world-readable (it holds only test keys).

Certificates come from a test CA (``trustme``) that exists for the server's lifetime; a
test trusts it through ``server.ca_file`` (the plan's ``ready.ca_file``). Each
``NginxSite`` is one ``server`` block: a name, the names its certificate covers (another
name makes a wrong-name certificate), its validity dates (past ones make an expired
certificate), and either a page or a redirect. The ``default_server`` on both ports is
what a fresh nginx serves for a name it has no site for: nginx's own default page, with
a certificate for ``default.invalid``.

    def test_something(nginx_server):
        server = nginx_server(NginxSite("www.example.test"),
                              NginxSite("old.example.test", not_after=days_from_now(-1)))
        check_web("www.example.test", server.address, server.web_settings())
"""

from __future__ import annotations

import datetime
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
import trustme

from tests.integration.servers import DaemonServer, free_port, need_binary, spawn, start_daemon, started_servers, wait_for_tcp

DEFAULT_NAME = "default.invalid"
#: Debian's nginx-common ships this page; the copy below is used when it is absent.
DEBIAN_DEFAULT_PAGE = Path("/usr/share/nginx/html/index.html")
NGINX_DEFAULT_PAGE = """<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>
</body>
</html>
"""


def days_from_now(days: float) -> datetime.datetime:
    """A certificate date relative to now (negative: in the past)."""
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)


@dataclass(frozen=True)
class NginxSite:
    """One site (``server`` block) of the test server.

    ``cert_names`` None: a certificate for ``name`` itself. ``not_before``/``not_after``
    None: trustme's defaults (valid from 2000 to 3000). ``redirect``: every path
    answers ``redirect_status`` with that Location instead of the page. ``missing`` paths
    answer 404 (every path but those serves the page)."""

    name: str
    cert_names: tuple[str, ...] | None = None
    not_before: datetime.datetime | None = None
    not_after: datetime.datetime | None = None
    redirect: str | None = None
    redirect_status: int = 301
    body: str | None = None
    missing: tuple[str, ...] = ("/missing",)

    @property
    def page(self) -> str:
        return self.body if self.body is not None else f"<!DOCTYPE html>\n<title>{self.name}</title>\n<h1>{self.name}</h1>\n"


@dataclass
class NginxServer(DaemonServer):
    """A running nginx and where to reach it."""

    http_port: int
    https_port: int
    ca_file: str
    log_files = ("error.log",)
    stop_timeout = 5.0

    def answers(self) -> bool:
        """Both ports accept connections (nginx binds them before it starts its worker)."""
        try:
            for port in (self.http_port, self.https_port):
                wait_for_tcp(port, timeout=0.5)
        except TimeoutError:
            return False
        return True


def _site_files(directory: Path, ca: trustme.CA, site: NginxSite, index: int) -> str:
    """Write a site's certificate, key and page; its ``server`` block."""
    leaf = ca.issue_cert(*(site.cert_names or (site.name,)), not_before=site.not_before, not_after=site.not_after)
    cert, key, root = directory / f"site{index}.crt", directory / f"site{index}.key", directory / f"site{index}"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    root.mkdir()
    (root / "index.html").write_text(site.page)
    if site.redirect:
        action = f"return {site.redirect_status} {site.redirect};"
    else:
        action = "".join(f"location = {path} {{ return 404; }}\n        " for path in site.missing) + "location / { try_files /index.html =404; }"
    return f"""
    server {{
        listen {{http}};
        listen {{https}} ssl;
        server_name {site.name};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        root {root};
        {action}
    }}
"""


def config(directory: Path, ca: trustme.CA, sites: tuple[NginxSite, ...]) -> str:
    """The whole ``nginx.conf`` (with ``{http}``/``{https}`` left for the listen addresses)."""
    default = NginxSite(DEFAULT_NAME, body=DEBIAN_DEFAULT_PAGE.read_text() if DEBIAN_DEFAULT_PAGE.exists() else NGINX_DEFAULT_PAGE)
    default_block = _site_files(directory, ca, default, 0).replace(
        "listen {http};", "listen {http} default_server;").replace("listen {https} ssl;", "listen {https} ssl default_server;")
    blocks = "".join(_site_files(directory, ca, site, i) for i, site in enumerate(sites, 1))
    temp = "".join(f"    {kind}_temp_path {directory}/tmp/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {directory}/access.log;
    default_type text/html;
    server_tokens off;
{temp}{default_block}{blocks}
}}
"""


def start(*sites: NginxSite) -> NginxServer:
    binary = need_binary("nginx", "nginx")
    directory = Path(tempfile.mkdtemp(prefix="cutover-nginx-"))
    os.chmod(directory, 0o755)  # workers run as nobody under root
    (directory / "tmp").mkdir()
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    template = config(directory, ca, sites)

    def launch() -> NginxServer:
        http = https = free_port()
        while https == http:
            https = free_port()
        (directory / "nginx.conf").write_text(
            template.replace("{http}", f"127.0.0.1:{http}").replace("{https}", f"127.0.0.1:{https}"))
        command = [binary, "-p", f"{directory}/", "-c", str(directory / "nginx.conf"), "-e", str(directory / "error.log"),
                   "-g", "daemon off;"]
        return NginxServer(directory, http, https, str(directory / "ca.pem"), process=spawn(command, directory))

    return start_daemon("nginx", launch, clash="address already in use")


@pytest.fixture
def nginx_server() -> Iterator[Callable[..., NginxServer]]:
    """Start nginx for one test: ``nginx_server(NginxSite("www.example.test"), ...)``."""
    yield from started_servers(start)
