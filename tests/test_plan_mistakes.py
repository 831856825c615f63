"""Realistic plan mistakes, each with the exact message an operator sees, and a
property test that no plan, however mangled, gets anything but acceptance or a
located refusal."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from cutover import plan as planmod, planfile
from cutover.errors import PlanError

HEAD = "zone: example.com\nprovider: {type: rfc2136, server: 127.0.0.1}\n"


def refusal(tmp_path: Path, text: str | bytes) -> list[str]:
    path = tmp_path / "plan.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(PlanError) as info:
        planmod.load(path)
    return [line.removeprefix(f"{path}: ") for line in str(info.value).splitlines()]


CORPUS = [
    ("typo in a key", "records:\n  - {nmae: www, type: A, to: [192.0.2.1]}\n",
     ["records[0].nmae: unknown key 'nmae' (did you mean 'name'?)", "records[0].name: missing"]),
    ("typo in a section", "records: [{name: www, type: A, to: [192.0.2.1]}]\nretier: {threshold: 95%}\n",
     ["retier: unknown key 'retier' (did you mean 'retire'?)"]),
    ("IPv6 in an A record", "records: [{name: www, type: A, to: ['2001:db8::1']}]\n",
     ["records[0].to[0]: '2001:db8::1' is not a valid IPv4 address"]),
    ("MX at an IP", "records: [{name: '@', type: MX, to: ['10 192.0.2.25']}]\n",
     ["records[0].to[0]: '10 192.0.2.25': the MX target 192.0.2.25 is an IP address; MX must name a host (give the host an A record)"]),
    ("MX at a CNAME", "records:\n  - {name: '@', type: MX, to: ['10 mx.example.com.']}\n  - {name: mx, type: CNAME, to: [mail.example.net.]}\n",
     ["records[0]: MX target mx.example.com. is a CNAME in this plan; MX must point at a name with address records (RFC 2181 10.3)"]),
    ("TXT over 255 unsplit", "records: [{name: '@', type: TXT, to: ['\"" + "k" * 300 + "\"']}]\n",
     ["records[0].to[0]: '\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...' is not a valid TXT value (quoted strings of at most 255 characters each) (string too long)"]),
    ("relative name repeating the zone", "records: [{name: www.example.com, type: A, to: [192.0.2.1]}]\n",
     ["records[0].name: 'www.example.com' is relative, so it means www.example.com.example.com.; write www.example.com. (with the final dot) or 'www'"]),
    ("absolute name in another zone", "records: [{name: www.example.net., type: A, to: [192.0.2.1]}]\n",
     ["records[0].name: 'www.example.net.' is outside the zone example.com. (absolute names must end in the zone)"]),
    ("duplicate YAML key", "records:\n  - name: www\n    type: A\n    to: [192.0.2.1]\n    type: AAAA\n",
     ["line 7, column 5: invalid YAML: duplicate key 'type'"]),
    ("tab indentation", "records:\n\t- {name: www, type: A, to: [192.0.2.1]}\n",
     ["line 4, column 1: invalid YAML: found character '\\t' that cannot start any token (YAML indentation must use spaces, not tabs)"]),
    ("TTL as text", "records: [{name: www, type: A, ttl: 5m, to: [192.0.2.1]}]\n",
     ["records[0].ttl: '5m' is not a TTL (expected whole seconds, 0-2147483647)"]),
    ("values not a list", "records: [{name: www, type: A, to: {ip: 192.0.2.1}}]\n",
     ["records[0].to: {'ip': '192.0.2.1'} is not a list of values"]),
    ("resolver port not a number", "records: [{name: www, type: A, to: [192.0.2.1]}]\nwatch: {resolvers: [{address: 9.9.9.9, port: [53]}]}\n",
     ["watch.resolvers: '[53]' has an invalid port '[53]' (expected 1-65535)"]),
    ("filtering written as a word", "records: [{name: www, type: A, to: [192.0.2.1]}]\nwatch: {resolvers: [{address: 9.9.9.9, filtering: 'no'}]}\n",
     ["watch.resolvers: filtering: 'no' is not true or false"]),
    ("zero timeout", "records: [{name: www, type: A, to: [192.0.2.1]}]\nwatch: {timeout: 0}\n",
     ["watch.timeout: 0 must be longer than 0 seconds"]),
]


@pytest.mark.parametrize(("what", "body", "expected"), CORPUS, ids=[c[0] for c in CORPUS])
def test_realistic_mistakes(tmp_path, what, body, expected):
    assert refusal(tmp_path, HEAD + body) == expected


def test_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + (HEAD + "records: [{name: www, type: A, to: [192.0.2.1]}]\n").encode())
    assert planmod.load(path).records[0].to == ("192.0.2.1",)


def test_fifty_megabyte_file_is_refused_without_reading_it(tmp_path):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(50 * 1000 * 1000)
    started = time.monotonic()
    with pytest.raises(PlanError, match=r"huge.yaml: file is 50.0 MB; a plan is at most 16 MiB"):
        planmod.load(path)
    assert time.monotonic() - started < 1


def test_a_device_is_refused_without_reading_it(tmp_path):
    started = time.monotonic()  # /dev/zero once grew the process to 7 GB: its stat says 0 bytes
    with pytest.raises(PlanError, match=r"^/dev/zero: is a character device, not a plan file; give the path of a regular file$"):
        planmod.load("/dev/zero")
    link = tmp_path / "plan.yaml"
    link.symlink_to("/dev/zero")
    with pytest.raises(PlanError, match=r"plan.yaml: is a character device"):
        planmod.load(link)
    assert time.monotonic() - started < 1


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "plan.yaml"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(PlanError, match=r"plan.yaml: is a FIFO \(named pipe\), not a plan file"):
        planmod.load(fifo)
    assert time.monotonic() - started < 1


def test_a_socket_and_a_directory_are_refused(tmp_path):
    path = tmp_path / "plan.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        with pytest.raises(PlanError, match=r"plan.sock: is a socket, not a plan file"):
            planmod.load(path)
    with pytest.raises(PlanError, match=r": is a directory, not a plan file$"):
        planmod.load(tmp_path)


def test_the_read_stops_at_the_limit_whatever_stat_says(monkeypatch):
    """/proc files are regular and report 0 bytes; the read itself must enforce the limit."""
    monkeypatch.setattr(planfile, "MAX_PLAN_BYTES", 64)
    assert os.stat("/proc/self/maps").st_size == 0
    with pytest.raises(PlanError, match=r"^/proc/self/maps: file is larger than"):
        planmod.load("/proc/self/maps")


def test_a_plan_at_the_limit_is_read(tmp_path, monkeypatch):
    body = (HEAD + "records: [{name: www, type: A, to: [192.0.2.1]}]\n").encode()
    monkeypatch.setattr(planfile, "MAX_PLAN_BYTES", len(body))
    path = tmp_path / "plan.yaml"
    path.write_bytes(body)
    assert planmod.load(path).records[0].to == ("192.0.2.1",)


def test_a_long_resolver_list_in_the_plan_is_accepted(tmp_path):
    spec = ",".join(f"192.0.2.{i}" for i in range(1, 71))  # over 255 characters: once "File name too long"
    path = tmp_path / "plan.yaml"
    path.write_text(HEAD + "records: [{name: www, type: A, to: [192.0.2.1]}]\n" + f"watch: {{resolvers: '{spec}'}}\n")
    assert planmod.load(path).watch.resolvers == spec


def test_an_unset_variable_is_reported_once_naming_its_places(tmp_path):
    body = ("records:\n"
            "  - {name: www, type: A, ttl: '${TTL}', from: ['${OLD_IP}'], to: ['${NEW_IP}']}\n"
            "  - {name: mail, type: A, to: ['${NEW_IP}']}\n"
            "  - {name: ftp, type: A, to: ['${NEW_IP}']}\n")
    assert refusal(tmp_path, HEAD + body) == [
        "records[0].ttl: environment variable TTL is not set",
        "records[0].to[0]: environment variable NEW_IP is not set (also used at records[1].to[0] and records[2].to[0])",
        "records[0].from[0]: environment variable OLD_IP is not set",
    ]


def test_an_unset_variable_used_often_is_counted(tmp_path):
    body = "records:\n" + "".join(f"  - {{name: w{i}, type: A, to: ['${{NEW_IP}}']}}\n" for i in range(7))
    body += "watch: {interval: '${NEW_IP}'}\n"
    assert refusal(tmp_path, HEAD + body) == [
        ("records[0].to[0]: environment variable NEW_IP is not set "
         "(also used at records[1].to[0], records[2].to[0], records[3].to[0] and 4 more places)"),
    ]


def test_an_unset_variable_in_provider_settings_is_one_problem(tmp_path):
    text = ("zone: example.com\nprovider: {type: rfc2136, server: '${DNS}', tsig_name: k, tsig_secret: '${DNS}'}\n"
            "records: [{name: www, type: A, to: [192.0.2.1]}]\n")
    assert refusal(tmp_path, text) == [
        "provider.server: environment variable DNS is not set (also used at provider.tsig_secret)"]


def test_exponential_yaml_aliases_do_not_explode(tmp_path):
    """A "billion laughs" document: nine levels of nine aliases, 9**9 leaves if walked."""
    levels = ['x0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"x{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    text = "\n".join(levels) + "\n" + HEAD + "records:\n  - {name: www, type: A, to: *l8}\n  - *l8\n"
    started = time.monotonic()
    found = refusal(tmp_path, text)
    assert time.monotonic() - started < 5
    assert found[0] == "x0: unknown key 'x0' (expected one of: version, zone, provider, records, prepare, watch, retire, verify, safety, ready)"
    assert all(len(line) < 400 for line in found)
    assert any(line.startswith("records[0].to[0]: ") for line in found)


# --------------------------------------------------------------------------- property

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True),
                    st.text(max_size=30), st.sampled_from(["@", "www", "192.0.2.1", "10 mail", "5m", "100%", "${X}", "A", "MX"]))
YAMLISH = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["name", "type", "ttl", "from", "to", "zone", "records", "provider", "watch", "x"]), inner, max_size=4),
    max_leaves=20)

VALID = {
    "version": 1, "zone": "example.com", "provider": {"type": "rfc2136", "server": "127.0.0.1"},
    "records": [{"name": "www", "type": "A", "ttl": 300, "from": ["198.51.100.1"], "to": ["203.0.113.1"]},
                {"name": "@", "type": "MX", "to": ["10 mail.example.com."]}],
    "prepare": {"ttl": 300}, "watch": {"interval": "30s"}, "retire": {"threshold": "95%"},
}


def _mutate(doc, path, value):
    if not path:
        return value
    head, *rest = path
    if isinstance(doc, dict):
        key = head if isinstance(head, str) else sorted(doc, key=str)[head % len(doc)] if doc else "x"
        return {**doc, key: _mutate(doc.get(key), rest, value)}
    if isinstance(doc, list) and doc:
        i = head % len(doc) if isinstance(head, int) else 0
        return [*doc[:i], _mutate(doc[i], rest, value), *doc[i + 1:]]
    return value


def _check(tmp_path: Path, doc) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    try:
        planmod.load(path, environ={})
    except PlanError as exc:
        lines = str(exc).splitlines()
        assert lines and all(line.startswith(f"{path}: ") for line in lines)
        assert all(len(line) < 2000 for line in lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.lists(st.one_of(st.integers(0, 10), st.sampled_from(["records", "provider", "to", "from", "name", "type", "ttl", "zone", "watch", "retire"])), max_size=4),
       value=YAMLISH)
def test_mutated_plans_are_accepted_or_refused_with_a_located_message(tmp_path, path, value):
    _check(tmp_path, _mutate(VALID, path, value))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=YAMLISH)
def test_random_documents_never_crash_the_loader(tmp_path, doc):
    _check(tmp_path, doc)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_random_text_never_crashes_the_loader(tmp_path, text):
    path = tmp_path / "text.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        planmod.load(path, environ={})
    except PlanError as exc:
        assert str(exc).startswith(f"{path}: ")
