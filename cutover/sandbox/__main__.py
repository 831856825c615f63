"""``python -m cutover.sandbox serve DIR``: a sandbox as a process of its own.

A second ``cutover`` process (or a person with ``dig``) can then work against the
same zone directory and the printed endpoints, which is how the ``sandbox`` provider
is rehearsed outside the tests. Kept out of the package's ``__init__`` so that
importing ``cutover.sandbox`` never parses arguments or installs signal handlers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import dns.exception

from cutover.sandbox import DEFAULT_RESOLVERS, LOOPBACK, Sandbox, SandboxError, serve


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cutover.sandbox serve DIR --zone ZONE``: serve until killed.

    The endpoints are printed as one JSON document on stdout (then stdout is left
    alone), so a script or a second ``cutover`` process can find them."""
    parser = argparse.ArgumentParser(prog="python -m cutover.sandbox", description="Run a DNS sandbox on loopback.")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("serve", help="serve a zone directory until interrupted")
    cmd.add_argument("directory", help="directory holding the zone file (created if missing)")
    cmd.add_argument("--zone", default="demo.example.", help="zone to serve (default: demo.example.)")
    cmd.add_argument("--address", default=LOOPBACK, help="loopback address to listen on (default: 127.0.0.1)")
    cmd.add_argument("--port", type=int, default=0, help="authoritative server port (default: any free port)")
    cmd.add_argument("--no-resolvers", action="store_true", help="start only the authoritative server")
    args = parser.parse_args(argv)
    try:
        sandbox = Sandbox(
            args.directory,
            args.zone,
            resolvers=() if args.no_resolvers else DEFAULT_RESOLVERS,
            address=args.address,
            port=args.port,
        )
    except (SandboxError, OSError, ValueError, dns.exception.DNSException) as exc:
        print(f"cutover sandbox: {exc}", file=sys.stderr)
        return 2
    with sandbox:
        serve(sandbox)
    return 0


if __name__ == "__main__":
    sys.exit(main())
