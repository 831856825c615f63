"""A moto server on loopback standing in for the AWS APIs.

moto runs in server mode as its own process, so boto3 goes through its real HTTP
stack, signing, retries and error parsing, exactly as against AWS. The process is
shared by the test session (it starts in about a second); each test gets its own
hosted zones, and fake credentials in the environment so that nothing from a
developer's real AWS set-up can leak in or be used.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.integration.servers import free_port, stop_process, wait_for_tcp

FAKE_ACCESS_KEY = "AKIAMOTOFAKEKEY00000"
FAKE_SECRET_KEY = "moto-fake-secret-do-not-print-0123456789"

#: Variables of the boto3 chain that a developer's shell may set and that would
#: change where requests go or how they are signed.
_AWS_VARS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL_ROUTE_53",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start ``moto_server`` on a free loopback port for the session; yield its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        try:
            wait_for_tcp(port, timeout=30)
        except TimeoutError:
            pytest.fail(f"moto_server did not start: {Path(log).read_text(errors='replace')[-2000:]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@pytest.fixture
def moto(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """Point boto3's chain at the moto server with fake credentials; yield the URL."""
    for var in _AWS_VARS:
        monkeypatch.delenv(var, raising=False)
    empty = tmp_path / "aws-config-empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield moto_endpoint
