"""Secrets never leave the environment: a whole cutover per provider (and a failing
one), after which every byte cutover wrote (stdout, stderr, JSON, the state
directory, exported plans) is searched for the secret values."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path

import yaml

from tests.integration.servers.bind import BindServer, BindZone, bind_server  # noqa: F401 (fixture)
from tests.integration.servers.moto import FAKE_ACCESS_KEY, FAKE_SECRET_KEY, moto, moto_endpoint  # noqa: F401
from tests.integration.servers.pdns import pdns_server, pdns_zone  # noqa: F401 (fixtures)


def cutover(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cutover", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=90, env=env)


def whole_cutover(tmp_path: Path, plan: Path, env: dict, export_args: list[str], verify: bool) -> list[str]:
    """Every command once, plus failures; returns everything printed."""
    printed = []
    no_verify = [] if verify else ["--no-verify"]
    for args in (["diff", str(plan)], ["diff", str(plan), "--format", "json"], ["prepare", str(plan)],
                 ["apply", str(plan), "--yes", "--force", *no_verify], ["status", str(plan), "--format", "json"],
                 ["watch", str(plan), "--once", "--format", "json"], ["status", str(plan)],
                 ["rollback", str(plan), "--yes", "--force", *no_verify],
                 ["export", *export_args, "-o", str(tmp_path / "exported.yaml")]):
        result = cutover(*args, cwd=tmp_path, env=env)
        assert "Traceback" not in result.stderr, (args, result.stderr)
        printed += [result.stdout, result.stderr]
    return printed


def assert_nowhere(secrets: list[bytes], printed: list[str], *trees: Path) -> None:
    for secret in secrets:
        for text in printed:
            assert secret.decode(errors="ignore") not in text
        for tree in trees:
            for path in tree.rglob("*"):
                if path.is_file():
                    assert secret not in path.read_bytes(), f"secret found in {path}"


def assert_private(state: Path) -> None:
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for path in state.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def plan_file(tmp_path: Path, zone: str, provider: dict, verify: list[str], resolvers: str) -> Path:
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "zone": zone, "provider": provider,
        "records": [{"name": "www", "type": "A", "ttl": 60, "to": ["203.0.113.10"]}],
        "prepare": {"ttl": 60}, "verify": {"nameservers": verify, "timeout": "5s"},
        "watch": {"resolvers": resolvers, "timeout": "1s"}, "retire": {"parallel_period": "1s"},
        "safety": {"max_change_share": "100%"},
    }))
    return plan


def test_tsig_secret_stays_secret(tmp_path, bind_server):
    server = bind_server(BindZone("secret.test.", records=("www 60 IN A 192.0.2.10",)))
    endpoint = f"127.0.0.1:{server.port}"
    provider = {"type": "rfc2136", "server": "127.0.0.1", "port": server.port, "tsig_name": server.key_name,
                "tsig_secret": "${TSIG_SECRET}", "tsig_algorithm": "hmac-sha256", "timeout": 2}
    plan = plan_file(tmp_path, "secret.test.", provider, [endpoint], endpoint)
    env = {**os.environ, "TSIG_SECRET": server.key_secret}
    export = ["--provider", "rfc2136", "--zone", "secret.test.", "--setting", "server=127.0.0.1",
              "--setting", f"port={server.port}", "--setting", f"tsig_name={server.key_name}",
              "--setting", "tsig_secret=${TSIG_SECRET}"]
    printed = whole_cutover(tmp_path, plan, env, export, verify=True)
    wrong = base64.b64encode(b"w" * 32).decode()
    failing = cutover("apply", str(plan), "--yes", "--force", cwd=tmp_path, env={**env, "TSIG_SECRET": wrong, "CUTOVER_DEBUG": "1"})
    assert failing.returncode == 3 and server.key_name in failing.stderr
    printed += [failing.stdout, failing.stderr]
    secrets = [server.key_secret.encode(), base64.b64decode(server.key_secret), wrong.encode()]
    assert_nowhere(secrets, printed, tmp_path / ".cutover", tmp_path / "exported.yaml")
    exported = yaml.safe_load((tmp_path / "exported.yaml").read_text())
    assert exported["provider"]["tsig_secret"] == "${TSIG_SECRET}"  # the placeholder as the user gave it
    assert_private(tmp_path / ".cutover")


def test_powerdns_api_key_stays_secret(tmp_path, pdns_server, pdns_zone):
    dns_endpoint = f"127.0.0.1:{pdns_server.dns_port}"
    provider = {"type": "powerdns", "url": pdns_server.api_url, "api_key": "${PDNS_KEY}"}
    plan = plan_file(tmp_path, pdns_zone, provider, [dns_endpoint], dns_endpoint)
    env = {**os.environ, "PDNS_KEY": pdns_server.api_key}
    export = ["--provider", "powerdns", "--zone", pdns_zone, "--setting", f"url={pdns_server.api_url}",
              "--setting", "api_key=${PDNS_KEY}"]
    printed = whole_cutover(tmp_path, plan, env, export, verify=True)
    failing = cutover("diff", str(plan), cwd=tmp_path, env={**env, "PDNS_KEY": "wrong-key-0123456789", "CUTOVER_DEBUG": "1"})
    assert failing.returncode == 3
    printed += [failing.stdout, failing.stderr]
    assert_nowhere([pdns_server.api_key.encode(), b"wrong-key-0123456789"], printed, tmp_path / ".cutover", tmp_path / "exported.yaml")
    assert_private(tmp_path / ".cutover")


def test_aws_keys_stay_secret(tmp_path, moto):
    import boto3

    client = boto3.client("route53")
    client.create_hosted_zone(Name="aws-secret.test.", CallerReference=str(tmp_path))
    provider = {"type": "route53"}
    plan = plan_file(tmp_path, "aws-secret.test.", provider, [], "127.0.0.1:9")
    env = dict(os.environ)
    export = ["--provider", "route53", "--zone", "aws-secret.test."]
    printed = whole_cutover(tmp_path, plan, env, export, verify=False)
    failing = cutover("diff", str(plan), cwd=tmp_path, env={**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "CUTOVER_DEBUG": "1",
                                                            "AWS_MAX_ATTEMPTS": "1"})
    assert failing.returncode == 3
    printed += [failing.stdout, failing.stderr]
    assert_nowhere([FAKE_SECRET_KEY.encode(), FAKE_ACCESS_KEY.encode()], printed, tmp_path / ".cutover", tmp_path / "exported.yaml")
    assert_private(tmp_path / ".cutover")
