"""A DNS provider for any JSON REST API, described in YAML instead of written in Python.

Most DNS hosts offer a REST API that differs from the next one only in paths, field
names and where the records sit in a reply. The ``http`` provider reads that
description (from the plan's ``provider`` settings, or from a file named by
``description:``; plan settings win key by key) and does what a dedicated provider
does: list, compare ``before`` with the live zone, and write. Two shapes of API fit:

* one entry per record *value* with its own id (Cloudflare, DigitalOcean, Hetzner):
  ``create``/``update``/``delete`` requests, one per value, or one ``apply`` request
  with ``each_record`` templates when the API has a batch endpoint;
* one entry per record *set* (PowerDNS): one ``apply`` request built from every
  change with ``each_set`` templates (``replace``, ``delete``, ``record``).

A description (see ``plans/http/*.yaml`` for two complete ones)::

    service: Cloudflare                  # the API's name in messages
    base_url: https://api.example/v4
    auth: {type: bearer, token: "${TOKEN}"}        # or header (header, value), basic (username, password)
    vars: {server_id: localhost}         # constants usable as placeholders
    zone_id: "{zone}"                    # a template; else zone_lookup finds it
    zone_lookup: {path: /zones, params: {name: "{zone_name}"}, records: result, id: id,
                  nameservers: name_servers}
    list:
      path: /zones/{zone_id}/records
      records: result                    # dotted path to the entries ("" = the reply itself)
      id: id                             # per-value APIs only
      name: name
      type: type
      ttl: ttl
      value: "{content}"                 # per value: a template over the entry's fields
      value_by_type: {MX: "{priority} {content}"}
      values: records[].content          # per set instead: a path ending in a list
      pagination: {style: page, page_param: page, per_page_param: per_page, per_page: 100,
                   total_pages: result_info.total_pages}   # or style: cursor / link / none
    write_value:                         # API fields of one value, merged into record bodies
      MX: {content: "{value.exchange}", priority: "{value.preference}"}
    create: {method: POST, path: ..., body: {name: "{host}", type: "{type}", ttl: "{ttl}"}}
    update: {method: PATCH, path: .../{id}, body: {ttl: "{ttl}"}}
    delete: {method: DELETE, path: .../{id}}

Placeholders are ``{name}``: ``zone`` (with the final dot), ``zone_name`` (without),
``zone_id``, every ``vars`` entry, and per change ``name`` (``www.example.com.``),
``host`` (``www.example.com``), ``relative`` (``www`` or ``@``), ``type``, ``ttl``,
``values`` (canonical strings), ``records`` (``each_set.record`` rendered per value);
per value ``value`` (canonical text), ``value.FIELD`` (dnspython's field of that
type: ``preference``, ``exchange``, ``target``, ``tag``...) and ``id``. A string that
is exactly one placeholder keeps the value's type (a TTL stays a number, ``{values}``
a list); a placeholder inside a longer string is inserted as text.

The check of ``before`` against a fresh read happens before anything is sent; APIs
without a transaction get their changes one by one, and a failure half-way raises
``PartialApplyError`` naming the record sets that fully landed.
"""

from __future__ import annotations

import base64
import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping, Sequence
from urllib.parse import urlparse

import dns.name
import requests
import yaml

from cutover.errors import DriftError, PartialApplyError, ProviderError, UsageError
from cutover.values import substitute_tree
from cutover.records import Change, RecordKey, RecordSet, in_zone, normalise_value, parse_rdata, relative_name, shorten
from providers.base import ApplyReceipt, Provider
from providers.http import ApiClient, ApiError, RetryPolicy

MAX_PAGES = 10_000  # a guard against a server whose pagination never ends
DEFAULT_NS_TTL = 86400

_PLACEHOLDER = re.compile(r"\{([A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)\}")

DESCRIPTION_KEYS = (
    "service", "base_url", "auth", "vars", "zone_id", "zone_lookup", "list", "write_value",
    "create", "update", "delete", "apply",
)


# --------------------------------------------------------------------------- paths and templates


class ReplyMismatch(ValueError):
    """A reply that does not have what the description says it has."""


def _keys_of(data: Any) -> str:
    if isinstance(data, Mapping):
        return f"keys: {', '.join(map(str, data)) or 'none'}"
    if isinstance(data, list):
        return f"a list of {len(data)}"
    return f"a {type(data).__name__}"


def dig(data: Any, path: str, _full: str = "", _at: str = "") -> Any:
    """The value at a dotted ``path``; ``a[].b`` maps ``.b`` over the list at ``a``.

    An empty path is the data itself. Raises ``ReplyMismatch`` saying what was there
    instead, because "not found" alone never helps anyone fix a description."""
    full = _full or path
    if path in ("", "."):
        return data
    head, _, rest = path.partition(".")
    each = head.endswith("[]")
    key = head[:-2] if each else head
    if key:
        if not isinstance(data, Mapping) or key not in data:
            if _at:
                raise ReplyMismatch(f"path {full!r} not found: no {key!r} in {_at} ({_keys_of(data)})")
            raise ReplyMismatch(f"path {full!r} not found ({_keys_of(data)})")
        data = data[key]
        _at = f"{_at}.{key}" if _at else key
    if not each:
        return dig(data, rest, full, _at) if rest else data
    if not isinstance(data, list):
        raise ReplyMismatch(f"path {full!r}: {_at or 'the reply'} is {_keys_of(data)}, not a list")
    return [dig(item, rest, full, f"{_at}[{i}]") if rest else item for i, item in enumerate(data)]


def render(template: Any, lookup: Callable[[str], Any]) -> Any:
    """``template`` with its placeholders filled in by ``lookup(name)``.

    Mappings and lists are rendered item by item. A string that is exactly one
    placeholder becomes the value itself (a number stays a number, a list a list)."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole:
            return lookup(whole.group(1))
        return _PLACEHOLDER.sub(lambda m: _text(lookup(m.group(1))), template)
    if isinstance(template, Mapping):
        return {k: render(v, lookup) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, lookup) for v in template]
    return template


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def placeholders(template: Any) -> set[str]:
    """Every placeholder name a template uses (checked against the known ones up front)."""
    if isinstance(template, str):
        return set(_PLACEHOLDER.findall(template))
    if isinstance(template, Mapping):
        return set().union(*(placeholders(v) for v in template.values())) if template else set()
    if isinstance(template, list):
        return set().union(*(placeholders(v) for v in template)) if template else set()
    return set()


# --------------------------------------------------------------------------- the description


@dataclass(frozen=True)
class Auth:
    type: str  # bearer | header | basic | none
    header: str = "Authorization"
    secret: str = field(default="", repr=False)
    username: str = ""

    def headers(self) -> dict[str, str]:
        if self.type == "bearer":
            return {"Authorization": f"Bearer {self.secret}"}
        if self.type == "header":
            return {self.header: self.secret}
        if self.type == "basic":
            raw = f"{self.username}:{self.secret}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
        return {}

    def secrets(self) -> tuple[str, ...]:
        out = [self.secret]
        if self.type == "basic":
            out.append(self.headers()["Authorization"].split(" ", 1)[1])
        return tuple(s for s in out if s)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True)
class Pagination:
    style: str = "none"  # none | page | cursor | link
    page_param: str = "page"
    per_page_param: str = ""
    per_page: int = 100
    total_pages: str = ""  # path in the reply; without it a short page is the last
    cursor_param: str = "cursor"
    next_cursor: str = ""  # path in the reply


@dataclass(frozen=True)
class Listing:
    request: Request
    records: str
    name: str
    type: str
    ttl: str
    id: str = ""
    value: str = ""  # template over one entry (one value per entry)
    values: str = ""  # path to the values of one entry (one set per entry)
    value_by_type: Mapping[str, str] = field(default_factory=dict)
    pagination: Pagination = Pagination()

    @property
    def per_value(self) -> bool:
        return not self.values


@dataclass(frozen=True)
class ZoneLookup:
    request: Request
    records: str = ""
    id: str = "id"
    nameservers: str = ""
    nameservers_ttl: int = DEFAULT_NS_TTL


@dataclass(frozen=True)
class Apply:
    """One request carrying every change: ``{sets}`` or ``{creates}``/``{updates}``/``{deletes}``."""

    request: Request
    atomic: bool = True
    each_set: Mapping[str, Any] = field(default_factory=dict)  # replace, delete, record
    each_record: Mapping[str, Any] = field(default_factory=dict)  # create, update, delete


@dataclass(frozen=True)
class Description:
    service: str
    base_url: str
    auth: Auth
    listing: Listing
    vars: Mapping[str, Any] = field(default_factory=dict)
    zone_id: str = "{zone}"
    zone_lookup: ZoneLookup | None = None
    write_value: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    create: Request | None = None
    update: Request | None = None
    delete: Request | None = None
    apply: Apply | None = None

    @property
    def per_record_writes(self) -> bool:
        return self.apply is None or bool(self.apply.each_record)


class _Reader:
    """Builds a ``Description`` from plain data, collecting every problem with its path."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def section(self, data: Any, path: str, allowed: Sequence[str], required: Sequence[str] = ()) -> dict | None:
        if not isinstance(data, Mapping):
            self.add(path, f"{shorten(repr(data))} is not a mapping")
            return None
        for key in data:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                extra = f"did you mean {hint[0]!r}?" if hint else f"expected one of: {', '.join(allowed)}"
                self.add(f"{path}.{key}" if path else str(key), f"unknown key ({extra})")
        for key in required:
            if key not in data or data[key] in (None, ""):
                self.add(f"{path}.{key}" if path else key, "missing")
        return dict(data)

    def text(self, data: Mapping, key: str, path: str, default: str = "") -> str:
        value = data.get(key, default)
        if value is None:
            return default
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            self.add(f"{path}.{key}" if path else key, f"{shorten(repr(value))} is not a string")
            return default
        return str(value)

    def request(self, data: Any, path: str, method: str = "GET", extra: Sequence[str] = ()) -> Request | None:
        sec = self.section(data, path, ("method", "path", "params", "body", *extra), ("path",))
        if sec is None:
            return None
        verb = self.text(sec, "method", path, method).upper()
        if verb not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            self.add(f"{path}.method", f"{verb!r} is not GET, POST, PUT, PATCH or DELETE")
        params = sec.get("params") or {}
        if not isinstance(params, Mapping):
            self.add(f"{path}.params", "is not a mapping")
            params = {}
        req_path = self.text(sec, "path", path)
        if req_path and not req_path.startswith("/"):
            self.add(f"{path}.path", f"{req_path!r} must start with '/' (it is appended to base_url)")
        return Request(verb, req_path, dict(params), sec.get("body"))


def read_description(data: Any) -> tuple[Description | None, list[tuple[str, str]]]:
    """The description in ``data`` and the problems found in it (paths like ``list.records``)."""
    r = _Reader()
    top = r.section(data, "", DESCRIPTION_KEYS, ("base_url", "list"))
    if top is None:
        return None, r.problems
    base_url = r.text(top, "base_url", "")
    parsed = urlparse(base_url)
    if base_url and (parsed.scheme not in ("http", "https") or not parsed.netloc):
        r.add("base_url", f"{shorten(base_url)!r} is not an http(s) URL")
    auth = _auth(r, top.get("auth"))
    listing = _listing(r, top.get("list")) if "list" in top else None
    lookup = _zone_lookup(r, top["zone_lookup"]) if top.get("zone_lookup") is not None else None
    vars_ = top.get("vars") or {}
    if not isinstance(vars_, Mapping):
        r.add("vars", "is not a mapping")
        vars_ = {}
    write_value = top.get("write_value") or {}
    if not isinstance(write_value, Mapping) or not all(isinstance(v, Mapping) for v in write_value.values()):
        r.add("write_value", "must map record types to mappings of API fields")
        write_value = {}
    ops = {k: r.request(top[k], k, m) for k, m in (("create", "POST"), ("update", "PATCH"), ("delete", "DELETE")) if top.get(k) is not None}
    apply = _apply(r, top["apply"]) if top.get("apply") is not None else None
    service = r.text(top, "service", "", "") or (parsed.hostname or "HTTP API")
    if listing is None:
        return None, r.problems
    desc = Description(
        service=service,
        base_url=base_url,
        auth=auth,
        listing=listing,
        vars=dict(vars_),
        zone_id=r.text(top, "zone_id", "", "{zone}") or "{zone}",
        zone_lookup=lookup,
        write_value={str(k).upper(): dict(v) for k, v in write_value.items()},
        create=ops.get("create"),
        update=ops.get("update"),
        delete=ops.get("delete"),
        apply=apply,
    )
    _check_writes(r, desc, set(ops))
    _check_placeholders(r, desc)
    return (None if r.problems else desc), r.problems


def _auth(r: _Reader, data: Any) -> Auth:
    if data is None:
        return Auth("none")
    sec = r.section(data, "auth", ("type", "token", "header", "value", "username", "password"), ("type",))
    if sec is None:
        return Auth("none")
    kind = r.text(sec, "type", "auth")
    need = {"bearer": ("token",), "header": ("header", "value"), "basic": ("username", "password"), "none": ()}
    if kind not in need:
        r.add("auth.type", f"{kind!r} is not one of bearer, header, basic, none")
        return Auth("none")
    for key in need[kind]:
        if not str(sec.get(key) or "").strip():
            r.add(f"auth.{key}", "missing or empty (the {kind} auth type needs it)".replace("{kind}", kind))
    secret = str(sec.get({"bearer": "token", "header": "value", "basic": "password"}.get(kind, "token")) or "")
    return Auth(kind, header=str(sec.get("header") or "Authorization"), secret=secret, username=str(sec.get("username") or ""))


def _listing(r: _Reader, data: Any) -> Listing | None:
    keys = ("records", "id", "name", "type", "ttl", "value", "values", "value_by_type", "pagination")
    req = r.request(data, "list", extra=keys)
    if req is None:
        return None
    sec = dict(data)
    for key in ("name", "type", "ttl"):
        if not sec.get(key):
            r.add(f"list.{key}", "missing (the path of each entry's " + key + ")")
    if bool(sec.get("value")) == bool(sec.get("values")):
        r.add("list", "needs exactly one of value (one value per entry) or values (a list of values per entry)")
    by_type = sec.get("value_by_type") or {}
    if not isinstance(by_type, Mapping):
        r.add("list.value_by_type", "is not a mapping")
        by_type = {}
    if by_type and sec.get("values"):
        r.add("list.value_by_type", "only applies with value (one value per entry)")
    return Listing(
        request=req,
        records=r.text(sec, "records", "list"),
        name=r.text(sec, "name", "list"),
        type=r.text(sec, "type", "list"),
        ttl=r.text(sec, "ttl", "list"),
        id=r.text(sec, "id", "list"),
        value=r.text(sec, "value", "list"),
        values=r.text(sec, "values", "list"),
        value_by_type={str(k).upper(): str(v) for k, v in by_type.items()},
        pagination=_pagination(r, sec.get("pagination")),
    )


def _pagination(r: _Reader, data: Any) -> Pagination:
    if data is None:
        return Pagination()
    fields = ("style", "page_param", "per_page_param", "per_page", "total_pages", "cursor_param", "next_cursor")
    sec = r.section(data, "list.pagination", fields, ("style",))
    if sec is None:
        return Pagination()
    style = r.text(sec, "style", "list.pagination")
    if style not in ("none", "page", "cursor", "link"):
        r.add("list.pagination.style", f"{style!r} is not one of none, page, cursor, link")
    if style == "cursor" and not sec.get("next_cursor"):
        r.add("list.pagination.next_cursor", "missing (the path of the next cursor in a reply)")
    per_page = sec.get("per_page", 100)
    if not isinstance(per_page, int) or isinstance(per_page, bool) or per_page < 1:
        r.add("list.pagination.per_page", f"{per_page!r} is not a positive number")
        per_page = 100
    p = "list.pagination"
    return Pagination(
        style=style,
        page_param=r.text(sec, "page_param", p, "page"),
        per_page_param=r.text(sec, "per_page_param", p),
        per_page=per_page,
        total_pages=r.text(sec, "total_pages", p),
        cursor_param=r.text(sec, "cursor_param", p, "cursor"),
        next_cursor=r.text(sec, "next_cursor", p),
    )


def _zone_lookup(r: _Reader, data: Any) -> ZoneLookup | None:
    req = r.request(data, "zone_lookup", extra=("records", "id", "nameservers", "nameservers_ttl"))
    if req is None:
        return None
    ttl = data.get("nameservers_ttl", DEFAULT_NS_TTL)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0:
        r.add("zone_lookup.nameservers_ttl", f"{ttl!r} is not a TTL in seconds")
        ttl = DEFAULT_NS_TTL
    return ZoneLookup(
        request=req,
        records=r.text(data, "records", "zone_lookup"),
        id=r.text(data, "id", "zone_lookup", "id") or "id",
        nameservers=r.text(data, "nameservers", "zone_lookup"),
        nameservers_ttl=ttl,
    )


def _apply(r: _Reader, data: Any) -> Apply | None:
    req = r.request(data, "apply", "POST", extra=("atomic", "each_set", "each_record"))
    if req is None:
        return None
    each_set, each_record = data.get("each_set") or {}, data.get("each_record") or {}
    if bool(each_set) == bool(each_record):
        r.add("apply", "needs exactly one of each_set (one entry per record set) or each_record (one per value)")
    if each_set:
        sec = r.section(each_set, "apply.each_set", ("replace", "delete", "record"), ("replace", "delete"))
        each_set = sec or {}
    if each_record:
        sec = r.section(each_record, "apply.each_record", ("create", "update", "delete"), ("create", "update", "delete"))
        each_record = sec or {}
    atomic = data.get("atomic", True)
    if not isinstance(atomic, bool):
        r.add("apply.atomic", f"{atomic!r} is not true or false")
        atomic = True
    return Apply(req, atomic, dict(each_set), dict(each_record))


def _check_writes(r: _Reader, d: Description, ops: set[str]) -> None:
    if d.apply is not None and ops:
        r.add("apply", f"give either apply or create/update/delete, not both (found {', '.join(sorted(ops))})")
    elif d.apply is None and ops != {"create", "update", "delete"}:
        for op in sorted({"create", "update", "delete"} - ops):
            r.add(op, "missing (give create, update and delete, or one apply section)")
    if d.per_record_writes and not d.listing.per_value:
        r.add("list.values", "per-value writes (create/update/delete, apply.each_record) need list.value and list.id, one value per entry")
    elif d.per_record_writes and not d.listing.id:
        r.add("list.id", "missing (per-value writes address each value by its id)")


_ZONE_VARS = ("zone", "zone_name", "zone_id")
_SET_VARS = ("name", "host", "relative", "type", "ttl", "values", "records")
_VALUE_VARS = ("name", "host", "relative", "type", "ttl", "value", "id")


def _check_placeholders(r: _Reader, d: Description) -> None:
    """Unknown placeholders are description errors, found before any request is made."""
    base = set(_ZONE_VARS) | set(d.vars)

    def check(template: Any, path: str, known: Iterable[str]) -> None:
        allowed = base | set(known)
        for name in sorted(placeholders(template)):
            if name not in allowed and not (name.startswith("value.") and "value" in allowed):
                r.add(path, f"unknown placeholder {{{name}}} (known here: {', '.join(sorted(allowed))})")

    req = d.listing.request
    check([req.path, req.params, req.body], "list", ())
    if d.zone_lookup is not None:  # runs to find zone_id, so cannot use it
        req = d.zone_lookup.request
        for name in sorted(placeholders([req.path, req.params, req.body]) - {"zone", "zone_name"} - set(d.vars)):
            r.add("zone_lookup", f"unknown placeholder {{{name}}} (zone, zone_name and vars are known)")
    else:
        for name in placeholders(d.zone_id) - {"zone", "zone_name"} - set(d.vars):
            r.add("zone_id", f"unknown placeholder {{{name}}} (zone, zone_name and vars are known)")
    for key in ("create", "update", "delete"):
        req = getattr(d, key)
        if req:
            check([req.path, req.params, req.body], key, _VALUE_VARS if key != "create" else set(_VALUE_VARS) - {"id"})
    for rtype, fields in d.write_value.items():
        check(fields, f"write_value.{rtype}", _VALUE_VARS)
    if d.apply:
        lists = ("sets",) if d.apply.each_set else ("creates", "updates", "deletes")
        check([d.apply.request.path, d.apply.request.params, d.apply.request.body], "apply", lists)
        for key, template in d.apply.each_set.items():
            check(template, f"apply.each_set.{key}", ("value",) + _SET_VARS[:-1] if key == "record" else _SET_VARS)
        for key, template in d.apply.each_record.items():
            check(template, f"apply.each_record.{key}", _VALUE_VARS)


def load_settings(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> tuple[dict, list[tuple[str, str]]]:
    """The description as plain data: the ``description:`` file, overlaid by the plan's settings."""
    environ = os.environ if environ is None else environ
    problems: list[tuple[str, str]] = []
    data: dict[str, Any] = {}
    source = settings.get("description")
    if source is not None:
        path = Path(str(source)).expanduser()
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            return {}, [("description", f"cannot read {str(source)!r}: {exc.strerror or exc}")]
        except yaml.YAMLError as exc:
            return {}, [("description", f"{source}: invalid YAML: {exc}")]
        if not isinstance(loaded, Mapping):
            return {}, [("description", f"{source}: is not a mapping")]
        data.update(loaded)
    data.update({k: v for k, v in settings.items() if k != "description"})
    data, missing = substitute_tree(data, environ)
    problems += [(where, f"environment variable {name} is not set") for where, name in missing]
    return data, problems


def description_from_settings(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> tuple[Description | None, list[tuple[str, str]]]:
    """The parsed description and its problems, located for the plan loader.

    A problem inside a description file is reported under the ``description`` key
    with the file name and the path inside the file."""
    data, problems = load_settings(settings, environ)
    if not data:
        return None, problems
    desc, found = read_description(data)
    source = settings.get("description")
    located = []
    for path, message in found:
        top = path.split(".", 1)[0].split("[", 1)[0]
        if source is not None and top not in settings:
            located.append(("description", f"{source}: {path + ': ' if path else ''}{message}"))
        else:
            located.append((path, message))
    problems += located
    return (desc if not problems else None), problems


# --------------------------------------------------------------------------- the client


class _LinkClient(ApiClient):
    """The shared client, also keeping the ``Link`` header of the last reply (RFC 8288)."""

    last_links: dict = {}

    def _json(self, method: str, path: str, response: requests.Response) -> Any:
        self.last_links = response.links
        return super()._json(method, path, response)


@dataclass(frozen=True)
class _Entry:
    """One value as listed: its record set key, canonical value, TTL and id."""

    key: RecordKey
    value: str
    ttl: int
    id: Any


class HttpProvider(Provider):
    """A DNS API described in YAML (see the module docstring)."""

    settings_keys = ("description", *DESCRIPTION_KEYS)
    required_settings = ()
    #: The secrets sit inside ``auth`` (token, value, password) and never leave this object.
    secret_settings = ()

    def __init__(self, zone: str, settings: Mapping[str, Any]) -> None:
        super().__init__(zone, settings)
        desc, problems = description_from_settings(self.settings)
        if desc is None:
            raise UsageError("http provider: " + "; ".join(f"{p}: {m}" if p else m for p, m in problems))
        self.desc = desc
        self.client = _LinkClient(
            desc.service, desc.base_url, headers=desc.auth.headers(), secrets=desc.auth.secrets(), policy=RetryPolicy()
        )
        self._zone_id: str | None = None
        self._nameservers: list[str] | None = None

    def __repr__(self) -> str:
        return f"HttpProvider({self.zone!r}, service={self.desc.service!r}, base_url={self.desc.base_url!r})"

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        if "description" not in settings and "list" not in settings:
            return [("description", "missing: give a description file, or base_url, list and the write sections")]
        return description_from_settings(settings)[1]

    # -- placeholders -------------------------------------------------------------

    def _vars(self, **more: Any) -> Callable[[str], Any]:
        values = {**self.desc.vars, "zone": self.zone, "zone_name": self.zone.rstrip("."), **more}

        def lookup(name: str) -> Any:
            if name.startswith("value.") and "rdata" in values:
                return _rdata_field(values["rdata"], name[len("value."):])
            if name == "zone_id":
                return self.zone_id()
            if name not in values:
                raise ProviderError(f"{self.desc.service}: placeholder {{{name}}} has no value here")
            return values[name]

        return lookup

    def _send(self, req: Request, lookup: Callable[[str], Any], params: Mapping[str, Any] | None = None) -> Any:
        path = render(req.path, lookup)
        query = {**render(dict(req.params), lookup), **(params or {})}
        body = render(req.body, lookup) if req.body is not None else None
        return self.client.request(req.method, str(path), params=query or None, json=body)

    # -- the zone -------------------------------------------------------------------

    def zone_id(self) -> str:
        if self._zone_id is None:
            if self.desc.zone_lookup is None:
                self._zone_id = str(render(self.desc.zone_id, self._vars(zone_id=None)))
            else:
                self._lookup_zone()
        assert self._zone_id is not None
        return self._zone_id

    def _lookup_zone(self) -> None:
        zl = self.desc.zone_lookup
        assert zl is not None
        chosen = self.settings.get("zone_id")  # the plan may pick one of several zones of that name
        reply = self._send(zl.request, self._vars())
        found = self._dig(reply, zl.records, "zone_lookup.records")
        if isinstance(found, list):
            named = [z for z in found if _zone_name_matches(z, self.zone)]
            found = named if named or not found else found
            if chosen:
                found = [z for z in found if str(_try_dig(z, zl.id)) == str(chosen)]
            if len(found) != 1:
                raise ProviderError(
                    f"{self.desc.service}: zone_lookup found {len(found)} zones for {self.zone.rstrip('.')}"
                    + (" (is the zone there, and can these credentials see it?)" if not found else "; set zone_id in the plan")
                )
            found = found[0]
        self._zone_id = str(self._dig(found, zl.id, "zone_lookup.id"))
        if zl.nameservers:
            ns = self._dig(found, zl.nameservers, "zone_lookup.nameservers")
            if not isinstance(ns, list):
                raise ProviderError(f"{self.desc.service}: zone_lookup.nameservers: {zl.nameservers!r} is {_keys_of(ns)}, not a list")
            self._nameservers = [_absolute(str(n)).lower() for n in ns]

    def nameservers(self) -> list[str]:
        if self.desc.zone_lookup and self.desc.zone_lookup.nameservers:
            self.zone_id()
            return list(self._nameservers or ())
        apex = {rs.key: rs for rs in self.records()}.get((self.zone, "NS"))
        return list(apex.values) if apex else []

    def _dig(self, data: Any, path: str, where: str) -> Any:
        try:
            return dig(data, path)
        except ReplyMismatch as exc:
            raise ProviderError(self.client.scrub(f"{self.desc.service}: {where}: {exc} in the reply")) from None

    # -- reading --------------------------------------------------------------------

    def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
        return sorted(self._read(set(wanted))[0].values())

    def _pages(self) -> Iterable[Any]:
        """The replies of the listing, page after page."""
        lst = self.desc.listing
        pg = lst.pagination
        lookup = self._vars()
        params: dict[str, Any] = {}
        if pg.style == "page":
            params = {pg.page_param: 1}
            if pg.per_page_param:
                params[pg.per_page_param] = pg.per_page
        req = lst.request
        for _ in range(MAX_PAGES):
            self.client.last_links = {}
            reply = self._send(req, lookup, params)
            yield reply
            if pg.style == "page":
                chunk = self._dig(reply, lst.records, "list.records")
                if pg.total_pages:
                    total = _number(self._dig(reply, pg.total_pages, "list.pagination.total_pages"), "list.pagination.total_pages", self.desc.service)
                    if params[pg.page_param] >= total or not chunk:
                        return
                elif not chunk or len(chunk) < pg.per_page:
                    return
                params = {**params, pg.page_param: params[pg.page_param] + 1}
            elif pg.style == "cursor":
                try:
                    cursor = dig(reply, pg.next_cursor)
                except ReplyMismatch:
                    cursor = None  # the last page often leaves the cursor out altogether
                if cursor in (None, ""):
                    return
                params = {pg.cursor_param: cursor}
            elif pg.style == "link":
                nxt = (self.client.last_links.get("next") or {}).get("url")
                if not nxt:
                    return
                req = Request("GET", self._relative_url(nxt))
                params = {}
            else:
                return
        raise ProviderError(f"{self.desc.service}: listing did not end after {MAX_PAGES} pages")

    def _relative_url(self, url: str) -> str:
        """A ``Link: rel=next`` URL as a path under base_url; another host is refused,
        because following it would send the credentials there."""
        base = self.client.base_url
        if url.startswith("/"):
            origin = urlparse(base)
            url = f"{origin.scheme}://{origin.netloc}{url}"
        if not url.startswith(base + "/") and not url.startswith(base + "?"):
            raise ProviderError(f"{self.desc.service}: refusing to follow a next-page link outside {base}: {shorten(url)}")
        return url[len(base):]

    def _entries(self) -> list[Any]:
        out: list[Any] = []
        for reply in self._pages():
            chunk = self._dig(reply, self.desc.listing.records, "list.records")
            if not isinstance(chunk, list):
                raise ProviderError(f"{self.desc.service}: list.records: {self.desc.listing.records!r} is {_keys_of(chunk)}, not a list of records")
            out.extend(chunk)
        return out

    def _read(self, wanted: set[RecordKey]) -> tuple[dict[RecordKey, RecordSet], dict[RecordKey, list[_Entry]]]:
        """The zone as record sets, and for per-value APIs each set's entries (with ids)."""
        lst = self.desc.listing
        members: dict[RecordKey, list[_Entry]] = {}
        sets: dict[RecordKey, RecordSet] = {}
        for i, entry in enumerate(self._entries()):
            where = f"record {i} of the listing"
            name = _absolute(str(self._field(entry, lst.name, "list.name", where))).lower()
            rtype = str(self._field(entry, lst.type, "list.type", where)).upper()
            ttl = _number(self._field(entry, lst.ttl, "list.ttl", where), f"list.ttl ({where})", self.desc.service)
            key = (name, rtype)
            try:
                if lst.per_value:
                    value = normalise_value(rtype, self._value_text(entry, rtype, where))
                    ident = self._field(entry, lst.id, "list.id", where) if lst.id else None
                    members.setdefault(key, []).append(_Entry(key, value, ttl, ident))
                else:
                    raw = self._field(entry, lst.values, "list.values", where)
                    if not isinstance(raw, list):
                        raise ProviderError(f"{self.desc.service}: list.values: {lst.values!r} is {_keys_of(raw)} in {where}, not a list")
                    if raw:
                        sets[key] = RecordSet.build(name, rtype, ttl, [str(v) for v in raw])
            except ValueError as exc:
                if key in wanted:
                    raise ProviderError(self.client.scrub(f"{self.desc.service}: cannot read {name} {rtype}: {exc}")) from None
                continue  # a type no plan manages (SOA forms, provider-only types)
        for key, entries in members.items():
            sets[key] = RecordSet(key[0], key[1], min(e.ttl for e in entries), tuple(sorted({e.value for e in entries})))
        apex_ns = (self.zone, "NS")
        if apex_ns not in sets and self.desc.zone_lookup and self.desc.zone_lookup.nameservers and self.nameservers():
            sets[apex_ns] = RecordSet.build(self.zone, "NS", self.desc.zone_lookup.nameservers_ttl, self.nameservers())
        return sets, members

    def _field(self, entry: Any, path: str, where: str, which: str) -> Any:
        try:
            return dig(entry, path)
        except ReplyMismatch as exc:
            raise ProviderError(self.client.scrub(f"{self.desc.service}: {where}: {exc} in {which}")) from None

    def _value_text(self, entry: Any, rtype: str, where: str) -> str:
        lst = self.desc.listing
        template = lst.value_by_type.get(rtype, lst.value)

        def lookup(name: str) -> Any:
            return self._field(entry, name, f"list.value ({{{name}}})", where)

        text = render(template, lookup)
        return _absolute_if_host(rtype, _text(text))

    # -- writing --------------------------------------------------------------------

    def apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        if not changes:
            return ApplyReceipt(detail="nothing to change")
        for ch in changes:
            if not in_zone(ch.name, self.zone):
                raise ProviderError(f"{self.desc.service}: {ch.name} is not in zone {self.zone}")
        members = self._check_before(changes)
        if self.desc.apply is None:
            return self._one_by_one(changes, members)
        return self._in_one_request(changes, members)

    def _check_before(self, changes: Sequence[Change]) -> dict[RecordKey, list[_Entry]]:
        """Refuse, before sending anything, when the zone is no longer what the plan was made against."""
        sets, members = self._read({ch.key for ch in changes})
        drifted = []
        for ch in changes:
            now = sets.get(ch.key)
            if ch.key == (self.zone, "NS") and self.desc.listing.per_value and ch.key in sets and ch.key not in members:
                raise ProviderError(f"{self.desc.service}: the zone's own name servers are not records this API can change")
            if now != ch.before:
                seen = f"ttl {now.ttl} {list(now.values)}" if now else "absent"
                drifted.append(f"{ch.name} {ch.type} is now {seen}")
        if drifted:
            raise DriftError(
                self.client.scrub(f"{self.desc.service}: the zone changed since it was read, nothing was sent: " + "; ".join(drifted))
            )
        return members

    def _change_vars(self, ch: Change, rs: RecordSet) -> dict[str, Any]:
        return {
            "name": rs.name,
            "host": rs.name.rstrip(".") or ".",
            "relative": relative_name(rs.name, self.zone),
            "type": rs.type,
            "ttl": rs.ttl,
            "values": list(rs.values),
        }

    def _record_body(self, template: Any, ch: Change, rs: RecordSet, value: str | None, ident: Any,
                     merge: bool = True) -> tuple[Any, Callable[[str], Any]]:
        """One value's body: ``template`` plus (for creates and updates) the type's ``write_value`` fields."""
        v = self._change_vars(ch, rs)
        if value is not None:
            v.update(value=value, rdata=parse_rdata(rs.type, value))
        v["id"] = ident
        lookup = self._vars(**v)
        body = render(template, lookup) if template is not None else None
        if merge and value is not None and isinstance(body, dict):
            fields = self.desc.write_value.get(rs.type)
            if fields is None and "*" in self.desc.write_value:
                fields = self.desc.write_value["*"]
            if fields:
                body.update(render(fields, lookup))
        return body, lookup

    def _operations(self, ch: Change, have: list[_Entry]) -> list[tuple[str, str | None, Any]]:
        """(op, value, id) steps that turn ``have`` into ``ch.after``, re-using ids where values change.

        Updates and creates come before deletes, so the name keeps answering throughout."""
        want = list(ch.after.values) if ch.after else []
        have_values = {e.value for e in have}
        keep = [e for e in have if e.value in want]
        gone = [e for e in have if e.value not in want]
        new = [v for v in want if v not in have_values]
        steps: list[tuple[str, str | None, Any]] = []
        if ch.after is not None:
            steps += [("update", e.value, e.id) for e in keep if e.ttl != ch.after.ttl]
            steps += [("update", v, e.id) for e, v in zip(gone, new)]
            steps += [("create", v, None) for v in new[len(gone):]]
        steps += [("delete", e.value, e.id) for e in gone[len(new):]]
        return steps

    def _one_by_one(self, changes: Sequence[Change], members: dict[RecordKey, list[_Entry]]) -> ApplyReceipt:
        landed: list[RecordKey] = []
        sent = 0
        for ch in changes:
            rs = ch.after or ch.before
            assert rs is not None
            steps = self._operations(ch, members.get(ch.key, []))
            for i, (op, value, ident) in enumerate(steps):
                try:
                    self._send_one(getattr(self.desc, op), ch, rs, op, value, ident)
                except ProviderError as exc:
                    if sent == 0:
                        raise ProviderError(f"{exc} (nothing was changed)") from None
                    half = f"; {ch.name} {ch.type} is half done ({i} of {len(steps)} requests)" if i else ""
                    done = ", ".join(f"{n} {t}" for n, t in landed) or "no record set completely"
                    raise PartialApplyError(
                        f"{exc} (the API has no transaction: landed {done}{half}; "
                        "run `cutover diff` to see the zone now)",
                        landed=list(landed),
                    ) from None
                sent += 1
            landed.append(ch.key)
        return ApplyReceipt(atomic=False, detail=f"{sent} request(s), one per record value")

    def _send_one(self, req: Request, ch: Change, rs: RecordSet, op: str, value: str | None, ident: Any) -> None:
        body, lookup = self._record_body(req.body, ch, rs, value, ident, merge=op != "delete")
        params = render(dict(req.params), lookup)
        self.client.request(req.method, str(render(req.path, lookup)), params=params or None, json=body)

    def _in_one_request(self, changes: Sequence[Change], members: dict[RecordKey, list[_Entry]]) -> ApplyReceipt:
        ap = self.desc.apply
        assert ap is not None
        lists: dict[str, list] = {}
        if ap.each_set:
            lists["sets"] = [self._set_item(ch) for ch in changes]
        else:
            lists.update(creates=[], updates=[], deletes=[])
            for ch in changes:
                rs = ch.after or ch.before
                assert rs is not None
                for op, value, ident in self._operations(ch, members.get(ch.key, [])):
                    body, _ = self._record_body(ap.each_record[op], ch, rs, value, ident, merge=op != "delete")
                    lists[op + "s"].append(body)
        if not any(lists.values()):
            return ApplyReceipt(detail="nothing to send")
        lookup = self._vars(**lists)
        try:
            self._send(ap.request, lookup)
        except ApiError as exc:
            if ap.atomic and exc.status is not None and 400 <= exc.status < 500:
                raise ProviderError(f"{exc} ({self.desc.service} refused the whole request; nothing was applied)") from None
            raise ProviderError(f"{exc} (whether the change was applied is unknown: run `cutover diff` before retrying)") from None
        return ApplyReceipt(atomic=ap.atomic, detail=f"{len(changes)} change(s) in one request")

    def _set_item(self, ch: Change) -> Any:
        ap = self.desc.apply
        assert ap is not None
        if ch.after is None or not ch.after.values:
            assert ch.before is not None
            return render(ap.each_set["delete"], self._vars(**self._change_vars(ch, ch.before)))
        v = self._change_vars(ch, ch.after)
        record_t = ap.each_set.get("record")
        v["records"] = [
            render(record_t, self._vars(**v, value=value, rdata=parse_rdata(ch.type, value))) if record_t is not None else value
            for value in ch.after.values
        ]
        return render(ap.each_set["replace"], self._vars(**v))

    def close(self) -> None:
        self.client.close()


# --------------------------------------------------------------------------- small helpers


def _absolute(host: str) -> str:
    host = host.strip()
    if host in ("", ".", "@"):
        return "."
    return host if host.endswith(".") else host + "."


def _absolute_if_host(rtype: str, text: str) -> str:
    """A bare host name (``mail.example.net``) is absolute in an API's data; the DNS parser
    would take it as relative to nothing, which is the same thing, so only ``@`` needs care."""
    return "." if rtype in ("CNAME", "NS", "PTR") and text.strip() in ("", "@") else text


def _try_dig(data: Any, path: str) -> Any:
    try:
        return dig(data, path)
    except ReplyMismatch:
        return None


def _zone_name_matches(item: Any, zone: str) -> bool:
    if not isinstance(item, Mapping) or "name" not in item:
        return True
    return _absolute(str(item["name"])).lower() == zone.lower()


def _number(value: Any, where: str, service: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise ProviderError(f"{service}: {where}: {shorten(repr(value))} is not a number") from None


def _rdata_field(rdata: Any, name: str) -> Any:
    """A dnspython rdata field in a JSON-friendly form: names as text, bytes decoded."""
    slots = [s for cls in type(rdata).__mro__ for s in getattr(cls, "__slots__", ()) if s not in ("rdclass", "rdtype", "rdcomment")]
    if name not in slots:
        known = ", ".join(dict.fromkeys(slots))
        raise ProviderError(f"placeholder {{value.{name}}}: a {rdata.rdtype.name} value has the fields {known}")
    value = getattr(rdata, name)
    if isinstance(value, dns.name.Name):
        return value.to_text()
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, tuple):
        return [v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else v for v in value]
    return value
