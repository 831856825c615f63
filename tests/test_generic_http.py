"""The generic http provider's own logic: paths, templates, descriptions, pagination."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from cutover import plan as plan_mod
from cutover.errors import PlanError, ProviderError, UsageError
from cutover.records import Change, RecordSet
from providers.restapi import HttpProvider
from providers.restapi.description import description_from_settings
from providers.restapi.template import ReplyMismatch, dig, render
from providers.httpclient import RetryPolicy
from tests.test_http import Reply, Script

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "tok-" + "q7" * 16


# -- paths ------------------------------------------------------------------------------------


def test_dig_follows_dotted_paths_and_lists() -> None:
    reply = {"result": [{"id": 1, "data": {"port": 5}}, {"id": 2, "data": {"port": 6}}], "info": {"pages": 3}}
    assert dig(reply, "info.pages") == 3
    assert dig(reply, "result[].id") == [1, 2]
    assert dig(reply, "result[].data.port") == [5, 6]
    assert dig(reply, "") is reply
    assert dig([1, 2], "[]") == [1, 2]


@pytest.mark.parametrize(
    "path, message",
    [
        ("result", "path 'result' not found (keys: success, errors, data)"),
        ("data.items", "path 'data.items' not found: no 'items' in data (a list of 1)"),
        ("errors[].code", "path 'errors[].code': errors is a str, not a list"),
        ("data[].x", "path 'data[].x' not found: no 'x' in data[0] (keys: y)"),
    ],
)
def test_dig_says_what_was_there(path: str, message: str) -> None:
    with pytest.raises(ReplyMismatch) as err:
        dig({"success": True, "errors": "none", "data": [{"y": 1}]}, path)
    assert str(err.value) == message


# -- templates ------------------------------------------------------------------------------------


def test_whole_placeholders_keep_their_type_and_inner_ones_become_text() -> None:
    values = {"ttl": 300, "values": ["a", "b"], "name": "www.example.com.", "id": None}
    template = {"ttl": "{ttl}", "records": "{values}", "path": "/r/{name}?t={ttl}", "fixed": False, "list": ["{ttl}", 1]}
    assert render(template, values.__getitem__) == {
        "ttl": 300, "records": ["a", "b"], "path": "/r/www.example.com.?t=300", "fixed": False, "list": [300, 1],
    }
    assert render("{value.preference}", {"value.preference": 10}.__getitem__) == 10
    assert render("no {braces here", {}.__getitem__) == "no {braces here"


def pdns_like(**overrides) -> dict:
    desc = yaml.safe_load((ROOT / "plans/http/powerdns.yaml").read_text())
    return {**desc, "base_url": "http://127.0.0.1:9", "auth": {"type": "header", "header": "X-API-Key", "value": TOKEN}, **overrides}


def test_rrset_templates_render_a_powerdns_patch() -> None:
    p = HttpProvider("example.com.", pdns_like())
    www = RecordSet.build("www.example.com.", "A", 300, ["192.0.2.2", "192.0.2.1"])
    old = RecordSet.build("old.example.com.", "TXT", 60, ['"x"'])
    assert p._set_item(Change(None, www)) == {
        "name": "www.example.com.", "type": "A", "ttl": 300, "changetype": "REPLACE",
        "records": [{"content": "192.0.2.1", "disabled": False}, {"content": "192.0.2.2", "disabled": False}],
    }
    assert p._set_item(Change(old, None)) == {"name": "old.example.com.", "type": "TXT", "changetype": "DELETE"}
    assert p.zone_id() == "example.com."


def test_value_fields_come_from_the_dns_parser() -> None:
    desc = yaml.safe_load((ROOT / "plans/http/cloudflare.yaml").read_text())
    p = HttpProvider("example.com.", {**desc, "auth": {"type": "bearer", "token": TOKEN}})
    ap = p.desc.apply
    assert ap is not None
    srv = RecordSet.build("_sip._tcp.example.com.", "SRV", 300, ["10 5 5060 sip.example.com."])
    body, _ = p._record_body(ap.each_record["create"], Change(None, srv), srv, srv.values[0], None)
    assert body == {"name": "_sip._tcp.example.com", "type": "SRV", "ttl": 300,  # SRV's fields replace "*"
                    "data": {"priority": 10, "weight": 5, "port": 5060, "target": "sip.example.com."}}
    caa = RecordSet.build("example.com.", "CAA", 300, ['0 issue "letsencrypt.org"'])
    body, _ = p._record_body(ap.each_record["update"], Change(caa, caa), caa, caa.values[0], "rid")
    assert body["id"] == "rid" and body["data"] == {"flags": 0, "tag": "issue", "value": "letsencrypt.org"}
    mx = RecordSet.build("example.com.", "MX", 300, ["10 mail.example.com."])
    body, lookup = p._record_body(ap.each_record["delete"], Change(mx, None), mx, mx.values[0], "rid", merge=False)
    assert body == {"id": "rid"}
    with pytest.raises(ProviderError, match=r"\{value.port\}: a MX value has the fields preference, exchange"):
        lookup("value.port")


# -- descriptions ---------------------------------------------------------------------------------


def test_a_malformed_description_lists_every_problem() -> None:
    _, _, problems = description_from_settings({
        "base_url": "ftp://x",
        "auth": {"type": "oauth"},
        "list": {"path": "zones", "records": "result", "name": "name", "ttl": "ttl", "value": "{content}",
                 "pagination": {"style": "pages", "per_page": 0}, "colour": "red"},
        "create": {"path": "/a/{nope}", "method": "FETCH"},
    }, {})
    assert sorted(problems) == sorted([
        ("list.colour", "unknown key 'colour' (expected one of: method, path, params, body, records, id, name, type, ttl, value, values, value_by_type, pagination)"),
        ("base_url", "'ftp://x' is not an http(s) URL"),
        ("auth.type", "'oauth' is not one of bearer, header, basic, none"),
        ("list.path", "'zones' must start with '/' (it is appended to base_url)"),
        ("list.type", "missing (the path of each entry's type)"),
        ("list.pagination.style", "'pages' is not one of none, page, cursor, link"),
        ("list.pagination.per_page", "0 is not a positive number"),
        ("create.method", "'FETCH' is not GET, POST, PUT, PATCH or DELETE"),
        ("delete", "missing (give create, update and delete, or one apply section)"),
        ("update", "missing (give create, update and delete, or one apply section)"),
        ("list.id", "missing (per-value writes address each value by its id)"),
        ("create", "unknown placeholder {nope} (known here: host, name, relative, ttl, type, value, zone, zone_id, zone_name)"),
    ])


def test_shapes_must_fit_together() -> None:
    _, _, problems = description_from_settings(pdns_like(apply={"path": "/x", "each_record": {"create": {}, "update": {}, "delete": {}}}), {})
    assert ("list.values", "per-value writes (create/update/delete, apply.each_record) need list.value and list.id, one value per entry") in problems
    _, _, problems = description_from_settings(pdns_like(delete={"path": "/x"}), {})
    assert ("apply", "give either apply or create/update/delete, not both (found delete)") in problems


PLAN_WITH_DESCRIPTION = """\
    version: 1
    zone: example.com
    provider:
      type: http
      description: api/desc.yaml
      base_url: http://127.0.0.1:8081
      auth: {type: header, header: X-API-Key, value: "${SECRET_FOR_TEST}"}
    records:
      - {name: www, type: A, to: [192.0.2.1]}
    """


def plan_beside(tmp_path: Path, desc: dict) -> Path:
    """A plan in tmp_path/plans naming its description by a path relative to itself."""
    (tmp_path / "plans" / "api").mkdir(parents=True)
    (tmp_path / "plans" / "api" / "desc.yaml").write_text(yaml.safe_dump(desc))
    plan = tmp_path / "plans" / "plan.yaml"
    plan.write_text(textwrap.dedent(PLAN_WITH_DESCRIPTION))
    return plan


def test_broken_description_file_is_a_plan_error_located_in_the_file(tmp_path: Path, monkeypatch) -> None:
    desc = yaml.safe_load((ROOT / "plans/http/powerdns.yaml").read_text())
    desc["list"]["pagination"] = {"style": "cursor"}
    plan = plan_beside(tmp_path, desc)
    monkeypatch.chdir(tmp_path)  # not the plan's folder: the description is found beside the plan all the same
    monkeypatch.delenv("SECRET_FOR_TEST", raising=False)
    with pytest.raises(PlanError) as err:
        plan_mod.load(plan)
    text = str(err.value)
    where = tmp_path / "plans" / "api" / "desc.yaml"
    assert f"provider.description: {where}: list.pagination.next_cursor: missing (the path of the next cursor in a reply)" in text
    assert "provider.auth.value: environment variable SECRET_FOR_TEST is not set" in text


def test_description_is_read_once_with_env_from_the_plan(tmp_path: Path, monkeypatch) -> None:
    """The plan loader reads the file (its ${ENV} from the plan's environment, the plan's
    own keys winning); the provider is built from that, not from the file again."""
    desc = yaml.safe_load((ROOT / "plans/http/powerdns.yaml").read_text())
    desc["vars"] = {"server_id": "${SERVER_FOR_TEST}"}
    plan = plan_mod.load(plan_beside(tmp_path, desc), environ={"SECRET_FOR_TEST": TOKEN, "SERVER_FOR_TEST": "left"})
    settings = plan.provider.settings
    assert "description" not in settings and settings["vars"] == {"server_id": "left"}
    assert settings["base_url"] == "http://127.0.0.1:8081"  # the plan's, over the file's
    (tmp_path / "plans" / "api" / "desc.yaml").unlink()
    p = HttpProvider("example.com.", settings)
    assert p.desc.vars == {"server_id": "left"} and p.desc.auth.secret == TOKEN


def test_unset_variable_in_the_description_file_is_located_in_it(tmp_path: Path) -> None:
    desc = yaml.safe_load((ROOT / "plans/http/powerdns.yaml").read_text())
    desc["vars"] = {"server_id": "${SERVER_FOR_TEST}"}
    with pytest.raises(PlanError) as err:
        plan_mod.load(plan_beside(tmp_path, desc), environ={"SECRET_FOR_TEST": TOKEN})
    assert f"provider.description: {tmp_path / 'plans/api/desc.yaml'}: vars.server_id: environment variable SERVER_FOR_TEST is not set" in str(err.value)


def test_missing_description_is_refused() -> None:
    assert HttpProvider.check_settings({"base_url": "http://x"}) == [
        ("description", "missing: give a description file, or base_url, list and the write sections")
    ]
    with pytest.raises(UsageError, match="http provider: description: nope.yaml: no such file"):
        HttpProvider("example.com.", {"description": "nope.yaml"})


def test_secrets_stay_out_of_repr() -> None:
    p = HttpProvider("example.com.", pdns_like())
    assert TOKEN not in repr(p) and TOKEN not in repr(p.desc) and TOKEN not in repr(p.client)
    basic = HttpProvider("example.com.", pdns_like(auth={"type": "basic", "username": "u", "password": TOKEN}))
    assert TOKEN not in repr(basic.desc)
    assert basic.client.scrub(f"echo {basic.desc.auth.headers()['Authorization']}") == "echo Basic ***"


# -- pagination against a scripted local server ------------------------------------------------------


@pytest.fixture
def server() -> Iterator[Script]:
    s = Script()
    yield s
    s.stop()


def listing_provider(server: Script, pagination: dict) -> HttpProvider:
    settings = {
        "base_url": server.url,
        "auth": {"type": "bearer", "token": TOKEN},
        "list": {"path": "/records", "records": "items", "id": "id", "name": "name", "type": "type", "ttl": "ttl",
                 "value": "{content}", "pagination": pagination},
        "create": {"path": "/records", "body": {"name": "{name}"}},
        "update": {"path": "/records/{id}"},
        "delete": {"path": "/records/{id}"},
    }
    p = HttpProvider("example.com.", settings)
    p.client.policy = RetryPolicy(retries=0, backoff=0.01)
    return p


def item(i: int) -> dict:
    return {"id": i, "name": f"h{i}.example.com", "type": "A", "ttl": 60, "content": f"192.0.2.{i}"}


def test_cursor_pagination(server: Script) -> None:
    server.replies = [
        Reply(body={"items": [item(1), item(2)], "meta": {"next": "c2"}}),
        Reply(body={"items": [item(3)], "meta": {"next": None}}),
    ]
    p = listing_provider(server, {"style": "cursor", "cursor_param": "after", "next_cursor": "meta.next"})
    assert [r.name for r in p.records()] == [f"h{i}.example.com." for i in (1, 2, 3)]
    assert [path for _, path, _ in server.seen] == ["/api/records", "/api/records?after=c2"]


def test_link_header_pagination_stays_on_the_api(server: Script) -> None:
    server.replies = [
        Reply(body={"items": [item(1)]}, headers={"Link": f'<{server.url}/records?page=2>; rel="next"'}),
        Reply(body={"items": [item(2)]}, headers={"Link": '</api/records?page=3>; rel="next", </api/records?page=1>; rel="first"'}),
        Reply(body={"items": [item(3)]}),
    ]
    p = listing_provider(server, {"style": "link"})
    assert len(p.records()) == 3
    assert [path for _, path, _ in server.seen] == ["/api/records", "/api/records?page=2", "/api/records?page=3"]
    server.seen.clear()
    server.replies = [Reply(body={"items": [item(1)]}, headers={"Link": '<http://elsewhere.invalid/steal>; rel="next"'})]
    with pytest.raises(ProviderError, match="refusing to follow a next-page link outside"):
        p.records()
    assert len(server.seen) == 1
    assert all(h.get("Authorization") == f"Bearer {TOKEN}" for _, _, h in server.seen)


def test_page_pagination_without_a_total_stops_at_a_short_page(server: Script) -> None:
    server.replies = [Reply(body={"items": [item(1), item(2)]}), Reply(body={"items": [item(3)]})]
    p = listing_provider(server, {"style": "page", "page_param": "p", "per_page_param": "n", "per_page": 2})
    assert len(p.records()) == 3
    assert [path for _, path, _ in server.seen] == ["/api/records?p=1&n=2", "/api/records?p=2&n=2"]


def test_reply_that_does_not_fit_the_description(server: Script) -> None:
    server.replies = [Reply(body={"success": True, "errors": [], "data": []})]
    p = listing_provider(server, {"style": "none"})
    with pytest.raises(ProviderError, match=r"list.records: path 'items' not found \(keys: success, errors, data\) in the reply"):
        p.records()
    server.replies = [Reply(body={"items": [{**item(1), "ttl": "soon"}]})]
    with pytest.raises(ProviderError, match=r"list.ttl \(record 0 of the listing\): 'soon' is not a number"):
        p.records()
