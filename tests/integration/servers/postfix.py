"""A real Postfix (Debian ``postfix``) on loopback: the new MX a mail readiness check asks.

Each server is Postfix's own ``master -d`` (the foreground process manager) with a private
configuration directory (``main.cf``, ``master.cf``), queue and data directories and log
file, all in one temporary directory; ``/etc/postfix`` and the system's Postfix (which the
Debian package may have started on port 25) are neither read for settings nor touched.
The one SMTP service listens on 127.0.0.1 on a free port, chroot is off everywhere, and
nothing is ever delivered: the readiness checks stop at ``RCPT TO`` and never send ``DATA``.

What a test chooses (``PostfixSetup``):

* ``domains``: the virtual alias domains the server accepts, each with ``recipients``
  (local parts, ``postmaster`` by default); any other domain is refused with
  ``554 5.7.1 Relay access denied`` (``relay="reject"``) or deferred with ``454 4.7.1``
  (``relay="defer"``), and an unknown local part of an accepted domain gets
  ``550 5.1.1 ... User unknown in virtual alias table``;
* ``tls``: a certificate and key (PEM files, e.g. from ``trustme``) to offer with
  STARTTLS, or None for a server that does not offer it.

    def test_something(postfix_server, tmp_path):
        ca = trustme.CA()
        server = postfix_server(PostfixSetup(domains=("example.test",), tls=tls_files(ca, tmp_path, "mx.example.test")))
        check_mx("mx.example.test", server.address, "example.test", MailSettings(port=server.port, ...))

Postfix's master must start as root (it drops to the ``postfix`` user for every daemon),
which CI is; the Debian package creates that user and the ``postdrop`` group.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import pytest
import trustme

from tests.integration.servers import DaemonServer, free_port, need_binary, spawn, start_daemon, started_servers

MASTER = "/usr/lib/postfix/sbin/master"
#: Queue subdirectories as Postfix's postfix-files creates them: (name, owner, group, mode).
QUEUE_DIRS = (
    ("active", "postfix", None, 0o700), ("bounce", "postfix", None, 0o700), ("corrupt", "postfix", None, 0o700),
    ("defer", "postfix", None, 0o700), ("deferred", "postfix", None, 0o700), ("flush", "postfix", None, 0o700),
    ("hold", "postfix", None, 0o700), ("incoming", "postfix", None, 0o700), ("saved", "postfix", None, 0o700),
    ("trace", "postfix", None, 0o700), ("private", "postfix", None, 0o700),
    ("maildrop", "postfix", "postdrop", 0o730), ("public", "postfix", "postdrop", 0o710), ("pid", "root", None, 0o755),
)


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for ``smtpd_tls_chain_files``: the certificate chain and its key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class PostfixSetup:
    """What one Postfix accepts and offers."""

    domains: tuple[str, ...] = ("example.test",)
    recipients: tuple[str, ...] = ("postmaster",)
    tls: TLSFiles | None = None
    hostname: str = "mx.example.test"  # myhostname: the banner's name
    relay: Literal["reject", "defer"] = "reject"
    address: str = "127.0.0.1"  # another loopback address (127.0.0.2) for a second server on the same port
    port: int | None = None  # None: a free port


@dataclass
class PostfixServer(DaemonServer):
    """A running Postfix master and where its SMTP service listens."""

    port: int
    setup: PostfixSetup
    log_files = ("maillog", "master.stderr")  # Postfix's own mail log (every daemon writes it through postlogd)
    ready_pause = 0.1

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    def answers(self) -> bool:
        """Ready when the SMTP service greets with 220 (smtpd answers, not just master's socket)."""
        try:
            with socket.create_connection((self.address, self.port), timeout=1) as sock:
                sock.settimeout(2)
                if sock.recv(512).startswith(b"220"):
                    sock.sendall(b"QUIT\r\n")
                    return True
        except OSError:
            pass
        return False

    def queued(self) -> list[str]:
        """Files in the queue directories that hold messages: always empty when nothing was sent."""
        queue = self.directory / "queue"
        return sorted(str(p.relative_to(queue)) for d in ("incoming", "active", "deferred", "hold", "maildrop")
                      for p in (queue / d).rglob("*") if p.is_file())


def tls_files(ca: trustme.CA, directory: Path, *names: str, **issue: Any) -> TLSFiles:
    """A certificate for ``names`` issued by ``ca`` (``trustme``; ``not_after=`` for an expired one),
    written where Postfix can read it: the chain (leaf first) and the key."""
    leaf = ca.issue_cert(*names, **issue)
    stem = names[0].replace("*", "_")
    cert, key = directory / f"{stem}.chain.pem", directory / f"{stem}.key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    key.chmod(0o600)
    return TLSFiles(cert, key)


def main_cf(directory: Path, setup: PostfixSetup) -> str:
    """The whole ``main.cf``: every path inside ``directory``, no local delivery, no DNS.

    ``mynetworks`` is a documentation address so that the test's own connection from
    127.0.0.1 is treated as any Internet client's: relaying is refused, not permitted."""
    relay = "reject_unauth_destination" if setup.relay == "reject" else "defer_unauth_destination"
    lines = [
        "compatibility_level = 3.6",
        f"queue_directory = {directory}/queue",
        f"data_directory = {directory}/data",
        "mail_owner = postfix",
        "setgid_group = postdrop",
        f"myhostname = {setup.hostname}",
        f"mydomain = {setup.hostname.partition('.')[2] or 'example.test'}",
        "myorigin = $myhostname",
        "mydestination =",
        "mynetworks = 192.0.2.1/32",
        "inet_interfaces = loopback-only",
        "inet_protocols = ipv4",
        "relayhost =",
        "alias_maps =",
        "alias_database =",
        "local_recipient_maps =",
        f"virtual_alias_domains = {', '.join(setup.domains)}",
        f"virtual_alias_maps = texthash:{directory}/virtual",
        f"smtpd_relay_restrictions = {relay}",
        "smtpd_recipient_restrictions =",
        "smtpd_banner = $myhostname ESMTP Postfix (cutover test)",
        "smtpd_peername_lookup = no",
        "smtp_dns_support_level = disabled",
        "smtputf8_enable = no",
        "biff = no",
        f"maillog_file = {directory}/maillog",
        f"maillog_file_prefixes = {directory}",
        "shlib_directory = /usr/lib/postfix",
        f"meta_directory = {directory}",
    ]
    if setup.tls is not None:
        lines += [
            "smtpd_tls_security_level = may",
            f"smtpd_tls_chain_files = {setup.tls.key}, {setup.tls.cert}",
            "smtpd_tls_loglevel = 1",
        ]
    else:
        lines.append("smtpd_tls_security_level = none")
    return "\n".join(lines) + "\n"


def master_cf(port: int, address: str = "127.0.0.1") -> str:
    """Postfix's standard services, chroot off, and the SMTP service on ``address:port``."""
    services = [
        f"{address}:{port} inet n - n - - smtpd",
        "pickup unix n - n 60 1 pickup",
        "cleanup unix n - n - 0 cleanup",
        "qmgr unix n - n 300 1 qmgr",
        "tlsmgr unix - - n 1000? 1 tlsmgr",
        "rewrite unix - - n - - trivial-rewrite",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        "verify unix - - n - 1 verify",
        "flush unix n - n 1000? 0 flush",
        "proxymap unix - - n - - proxymap",
        "showq unix n - n - - showq",
        "error unix - - n - - error",
        "retry unix - - n - - error",
        "discard unix - - n - - discard",
        "anvil unix - - n - 1 anvil",
        "scache unix - - n - 1 scache",
        "postlog unix-dgram n - n - 1 postlogd",
    ]
    return "\n".join(services) + "\n"


def _prepare(directory: Path, setup: PostfixSetup) -> None:
    """Queue and data directories owned as Postfix wants them; every parent traversable by postfix."""
    postfix = pwd.getpwnam("postfix").pw_uid
    directory.chmod(0o755)
    queue, data = directory / "queue", directory / "data"
    for path in (queue, data):
        path.mkdir(exist_ok=True)
    os.chown(data, postfix, -1)
    data.chmod(0o700)
    queue.chmod(0o755)
    for name, owner, group, mode in QUEUE_DIRS:
        path = queue / name
        path.mkdir(exist_ok=True)
        os.chown(path, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid if group else -1)
        path.chmod(mode)
    (directory / "maillog").touch()
    # texthash: read as it is, no postmap; every accepted address maps to itself (nothing is delivered)
    (directory / "virtual").write_text("".join(f"{r}@{d} {r}@{d}\n" for d in setup.domains for r in setup.recipients))


def start(setup: PostfixSetup) -> PostfixServer:
    """Start a Postfix for ``setup`` on a free port (tried up to three times)."""
    need_binary("postfix", "postfix")
    if not os.path.exists(MASTER):
        pytest.fail(f"{MASTER} not found: install the Debian package postfix")
    if os.geteuid() != 0:
        pytest.fail("Postfix's master must start as root (it drops to the postfix user); run the tests as root as CI does")
    try:
        pwd.getpwnam("postfix"), grp.getgrnam("postdrop")
    except KeyError:
        pytest.fail("the postfix user or postdrop group is missing: reinstall the Debian package postfix")
    directory = Path(tempfile.mkdtemp(prefix="cutover-postfix-"))
    _prepare(directory, setup)

    def launch() -> PostfixServer:
        port = setup.port or free_port()
        (directory / "main.cf").write_text(main_cf(directory, setup))
        (directory / "master.cf").write_text(master_cf(port, setup.address))
        process = spawn([MASTER, "-c", str(directory), "-d"], directory, "master.stderr")
        return PostfixServer(directory, port, setup, address=setup.address, process=process)

    return start_daemon("postfix", launch)


@pytest.fixture
def postfix_server() -> Iterator[Callable[[PostfixSetup], PostfixServer]]:
    """Start Postfix servers for one test: ``postfix_server(PostfixSetup(...))``; stopped and removed after."""
    yield from started_servers(start)
