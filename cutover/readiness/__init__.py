"""Is the new server ready? Checks of the servers a plan moves web and mail to.

Every move fails the same way when it fails: DNS is switched to a server that is not
ready for the domain. These checks connect to the new addresses themselves (never
through DNS, which still points at the old server) and ask what a client will ask:
HTTP and HTTPS with the name as Host and SNI, the certificate for that name; SMTP with
STARTTLS and ``RCPT TO:<postmaster@zone>`` (never ``DATA``: nothing is delivered); the
SPF record authorising the new senders. During the parallel period the same RCPT check
asks the *old* MX whether it still accepts mail, since caches still send mail there.

Each check is a ``Check``: a plain value, so that ``cutover check``, the ``readiness``
guard of ``apply`` and ``watch`` render and judge the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: ``Check.state``: passed; not ready yet (a 4xx, a timeout: try again later); failed;
#: not checked (a documentation address such as 192.0.2.10 or a reserved name such as
#: mail.example.com cannot be a real server, and asking the network about it would only
#: leak queries: RFC 5737, 3849, 2606, 6761).
OK, PENDING, FAILED, SKIPPED = "ok", "pending", "failed", "skipped"


@dataclass(frozen=True)
class Check:
    """One check of one name at one server.

    ``check`` is what was checked (``http``, ``https``, ``certificate``, ``smtp``,
    ``starttls``, ``rcpt``, ``spf``, ``dmarc``, ``autodiscover``, ``old-mx``);
    ``target`` the server as ``address:port`` (or a DNS name for record checks);
    ``name`` the name it was checked for; ``detail`` what was seen, in the server's own
    words where it gave some.
    """

    check: str
    target: str
    name: str
    state: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Nothing against the move: passed, or not checkable (and said so in ``detail``)."""
        return self.state in (OK, SKIPPED)

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "target": self.target, "name": self.name, "ok": self.ok,
                "state": self.state, "detail": self.detail}
