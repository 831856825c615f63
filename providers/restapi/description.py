"""The description of a REST API: its schema, read from plain data with every problem located.

A description is what an operator writes instead of a provider: where the records are
listed, which field holds what, and the requests that change them (see the package
docstring for the format). It is read here into frozen values the provider uses, and
every problem is reported at once with its path (``list.pagination.next_cursor``),
through the same problem collector as plans (``cutover.checking.Checker``).

A description given as a file (``description:``) is read once, when the plan is
loaded (``load``): its ``${ENV}`` are substituted from the plan's environment, the
plan's own settings win key by key, and a problem inside the file is reported under
``provider.description`` with the file's name and the path inside it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlparse

from cutover.checking import Checker
from cutover.errors import PlanError
from cutover.planfile import read_yaml
from cutover.values import show
from providers.restapi.template import placeholders

DEFAULT_NS_TTL = 86400

DESCRIPTION_KEYS = (
    "service", "base_url", "auth", "vars", "zone_id", "zone_lookup", "list", "write_value",
    "create", "update", "delete", "apply",
)

#: A problem as the provider interface reports it: (key path, message).
Found = list[tuple[str, str]]


# --------------------------------------------------------------------------- the schema


@dataclass(frozen=True)
class Auth:
    """How requests authenticate. The secret stays out of ``repr`` and is scrubbed from
    every message the client builds (``secrets``), even one the server echoes."""

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
    """One request of the API: method, then path, params and body as templates."""

    method: str
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True)
class Pagination:
    """How the listing goes on after its first page."""

    style: str = "none"  # none | page | cursor | link
    page_param: str = "page"
    per_page_param: str = ""
    per_page: int = 100
    total_pages: str = ""  # path in the reply; without it a short page is the last
    cursor_param: str = "cursor"
    next_cursor: str = ""  # path in the reply


@dataclass(frozen=True)
class Listing:
    """Where the records are in the listing's replies, and which field of an entry is what."""

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
    """The request that finds the zone's id (and its name servers, if the API has them) by name."""

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
    """A whole API description, checked: the provider only ever gets a complete one."""

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


# --------------------------------------------------------------------------- reading it


def read_description(data: Any) -> tuple[Description | None, Found]:
    """The description in ``data`` and the problems found in it (paths like ``list.records``)."""
    c = Checker("description", {})
    desc = _description(c, data)
    problems = [(p.path, p.message) for p in c.problems]
    return (None if problems else desc), problems


def _description(c: Checker, data: Any) -> Description | None:
    top = _section(c, data, "", DESCRIPTION_KEYS, ("base_url", "list"))
    if top is None:
        return None
    base_url = _base_url(c, top)
    auth = _auth(c, top.get("auth"))
    listing = _listing(c, top.get("list")) if "list" in top else None
    lookup = _zone_lookup(c, top["zone_lookup"]) if top.get("zone_lookup") is not None else None
    ops = {k: _request(c, top[k], k, m) for k, m in (("create", "POST"), ("update", "PATCH"), ("delete", "DELETE"))
           if top.get(k) is not None}
    apply = _apply_section(c, top["apply"]) if top.get("apply") is not None else None
    vars_, write_value = _vars(c, top), _write_value(c, top)
    if listing is None:
        return None
    desc = Description(
        service=_text(c, top, "service", "", "") or (urlparse(base_url).hostname or "HTTP API"),
        base_url=base_url,
        auth=auth,
        listing=listing,
        vars=vars_,
        zone_id=_text(c, top, "zone_id", "", "{zone}") or "{zone}",
        zone_lookup=lookup,
        write_value=write_value,
        create=ops.get("create"),
        update=ops.get("update"),
        delete=ops.get("delete"),
        apply=apply,
    )
    _check_writes(c, desc, set(ops))
    _check_placeholders(c, desc)
    return desc


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _section(c: Checker, data: Any, path: str, allowed: Sequence[str], required: Sequence[str] = ()) -> dict | None:
    """A mapping with only ``allowed`` keys and every ``required`` one (each problem noted)."""
    sec = c.mapping(data, path)
    if sec is None:
        return None
    c.keys(sec, allowed, path)
    for key in required:
        if sec.get(key) in (None, ""):
            c.add(_at(path, key), "missing")
    return dict(sec)


def _text(c: Checker, data: Mapping, key: str, path: str, default: str = "") -> str:
    value = data.get(key, default)
    if value is None:
        return default
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        c.add(_at(path, key), f"{show(value)} is not a string")
        return default
    return str(value)


def _request(c: Checker, data: Any, path: str, method: str = "GET", extra: Sequence[str] = ()) -> Request | None:
    sec = _section(c, data, path, ("method", "path", "params", "body", *extra), ("path",))
    if sec is None:
        return None
    verb = _text(c, sec, "method", path, method).upper()
    if verb not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        c.add(f"{path}.method", f"{verb!r} is not GET, POST, PUT, PATCH or DELETE")
    params = sec.get("params") or {}
    if not isinstance(params, Mapping):
        c.add(f"{path}.params", "is not a mapping")
        params = {}
    req_path = _text(c, sec, "path", path)
    if req_path and not req_path.startswith("/"):
        c.add(f"{path}.path", f"{req_path!r} must start with '/' (it is appended to base_url)")
    return Request(verb, req_path, dict(params), sec.get("body"))


def _base_url(c: Checker, top: Mapping[str, Any]) -> str:
    base_url = _text(c, top, "base_url", "")
    parsed = urlparse(base_url)
    if base_url and (parsed.scheme not in ("http", "https") or not parsed.netloc):
        c.add("base_url", f"{show(base_url)} is not an http(s) URL")
    return base_url


def _vars(c: Checker, top: Mapping[str, Any]) -> dict[str, Any]:
    vars_ = top.get("vars") or {}
    if not isinstance(vars_, Mapping):
        c.add("vars", "is not a mapping")
        return {}
    return dict(vars_)


def _write_value(c: Checker, top: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    write_value = top.get("write_value") or {}
    if not isinstance(write_value, Mapping) or not all(isinstance(v, Mapping) for v in write_value.values()):
        c.add("write_value", "must map record types to mappings of API fields")
        return {}
    return {str(k).upper(): dict(v) for k, v in write_value.items()}


def _auth(c: Checker, data: Any) -> Auth:
    if data is None:
        return Auth("none")
    sec = _section(c, data, "auth", ("type", "token", "header", "value", "username", "password"), ("type",))
    if sec is None:
        return Auth("none")
    kind = _text(c, sec, "type", "auth")
    need = {"bearer": ("token",), "header": ("header", "value"), "basic": ("username", "password"), "none": ()}
    if kind not in need:
        c.add("auth.type", f"{kind!r} is not one of bearer, header, basic, none")
        return Auth("none")
    for key in need[kind]:
        if not str(sec.get(key) or "").strip():
            c.add(f"auth.{key}", "missing or empty (the {kind} auth type needs it)".replace("{kind}", kind))
    secret = str(sec.get({"bearer": "token", "header": "value", "basic": "password"}.get(kind, "token")) or "")
    return Auth(kind, header=str(sec.get("header") or "Authorization"), secret=secret, username=str(sec.get("username") or ""))


def _listing(c: Checker, data: Any) -> Listing | None:
    keys = ("records", "id", "name", "type", "ttl", "value", "values", "value_by_type", "pagination")
    req = _request(c, data, "list", extra=keys)
    if req is None:
        return None
    sec = dict(data or {})
    for key in ("name", "type", "ttl"):
        if not sec.get(key):
            c.add(f"list.{key}", "missing (the path of each entry's " + key + ")")
    if bool(sec.get("value")) == bool(sec.get("values")):
        c.add("list", "needs exactly one of value (one value per entry) or values (a list of values per entry)")
    by_type = sec.get("value_by_type") or {}
    if not isinstance(by_type, Mapping):
        c.add("list.value_by_type", "is not a mapping")
        by_type = {}
    if by_type and sec.get("values"):
        c.add("list.value_by_type", "only applies with value (one value per entry)")
    return Listing(
        request=req,
        records=_text(c, sec, "records", "list"),
        name=_text(c, sec, "name", "list"),
        type=_text(c, sec, "type", "list"),
        ttl=_text(c, sec, "ttl", "list"),
        id=_text(c, sec, "id", "list"),
        value=_text(c, sec, "value", "list"),
        values=_text(c, sec, "values", "list"),
        value_by_type={str(k).upper(): str(v) for k, v in by_type.items()},
        pagination=_pagination(c, sec.get("pagination")),
    )


def _pagination(c: Checker, data: Any) -> Pagination:
    if data is None:
        return Pagination()
    fields = ("style", "page_param", "per_page_param", "per_page", "total_pages", "cursor_param", "next_cursor")
    sec = _section(c, data, "list.pagination", fields, ("style",))
    if sec is None:
        return Pagination()
    style = _text(c, sec, "style", "list.pagination")
    if style not in ("none", "page", "cursor", "link"):
        c.add("list.pagination.style", f"{style!r} is not one of none, page, cursor, link")
    if style == "cursor" and not sec.get("next_cursor"):
        c.add("list.pagination.next_cursor", "missing (the path of the next cursor in a reply)")
    per_page = sec.get("per_page", 100)
    if not isinstance(per_page, int) or isinstance(per_page, bool) or per_page < 1:
        c.add("list.pagination.per_page", f"{per_page!r} is not a positive number")
        per_page = 100
    p = "list.pagination"
    return Pagination(
        style=style,
        page_param=_text(c, sec, "page_param", p, "page"),
        per_page_param=_text(c, sec, "per_page_param", p),
        per_page=per_page,
        total_pages=_text(c, sec, "total_pages", p),
        cursor_param=_text(c, sec, "cursor_param", p, "cursor"),
        next_cursor=_text(c, sec, "next_cursor", p),
    )


def _zone_lookup(c: Checker, data: Any) -> ZoneLookup | None:
    req = _request(c, data, "zone_lookup", extra=("records", "id", "nameservers", "nameservers_ttl"))
    if req is None:
        return None
    ttl = data.get("nameservers_ttl", DEFAULT_NS_TTL)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0:
        c.add("zone_lookup.nameservers_ttl", f"{ttl!r} is not a TTL in seconds")
        ttl = DEFAULT_NS_TTL
    return ZoneLookup(
        request=req,
        records=_text(c, data, "records", "zone_lookup"),
        id=_text(c, data, "id", "zone_lookup", "id") or "id",
        nameservers=_text(c, data, "nameservers", "zone_lookup"),
        nameservers_ttl=ttl,
    )


def _apply_section(c: Checker, data: Any) -> Apply | None:
    req = _request(c, data, "apply", "POST", extra=("atomic", "each_set", "each_record"))
    if req is None:
        return None
    each_set, each_record = data.get("each_set") or {}, data.get("each_record") or {}
    if bool(each_set) == bool(each_record):
        c.add("apply", "needs exactly one of each_set (one entry per record set) or each_record (one per value)")
    if each_set:
        sec = _section(c, each_set, "apply.each_set", ("replace", "delete", "record"), ("replace", "delete"))
        each_set = sec or {}
    if each_record:
        sec = _section(c, each_record, "apply.each_record", ("create", "update", "delete"), ("create", "update", "delete"))
        each_record = sec or {}
    atomic = data.get("atomic", True)
    if not isinstance(atomic, bool):
        c.add("apply.atomic", f"{atomic!r} is not true or false")
        atomic = True
    return Apply(req, atomic, dict(each_set), dict(each_record))


def _check_writes(c: Checker, d: Description, ops: set[str]) -> None:
    if d.apply is not None and ops:
        c.add("apply", f"give either apply or create/update/delete, not both (found {', '.join(sorted(ops))})")
    elif d.apply is None and ops != {"create", "update", "delete"}:
        for op in sorted({"create", "update", "delete"} - ops):
            c.add(op, "missing (give create, update and delete, or one apply section)")
    if d.per_record_writes and not d.listing.per_value:
        c.add("list.values", "per-value writes (create/update/delete, apply.each_record) need list.value and list.id, one value per entry")
    elif d.per_record_writes and not d.listing.id:
        c.add("list.id", "missing (per-value writes address each value by its id)")


_ZONE_VARS = ("zone", "zone_name", "zone_id")
_SET_VARS = ("name", "host", "relative", "type", "ttl", "values", "records")
_VALUE_VARS = ("name", "host", "relative", "type", "ttl", "value", "id")


def _check_placeholders(c: Checker, d: Description) -> None:
    """Unknown placeholders are description errors, found before any request is made."""
    base = set(_ZONE_VARS) | set(d.vars)

    def check(template: Any, path: str, known: Iterable[str]) -> None:
        allowed = base | set(known)
        for name in sorted(placeholders(template)):
            if name not in allowed and not (name.startswith("value.") and "value" in allowed):
                c.add(path, f"unknown placeholder {{{name}}} (known here: {', '.join(sorted(allowed))})")

    req = d.listing.request
    check([req.path, req.params, req.body], "list", ())
    if d.zone_lookup is not None:  # runs to find zone_id, so cannot use it
        req = d.zone_lookup.request
        for name in sorted(placeholders([req.path, req.params, req.body]) - {"zone", "zone_name"} - set(d.vars)):
            c.add("zone_lookup", f"unknown placeholder {{{name}}} (zone, zone_name and vars are known)")
    else:
        for name in placeholders(d.zone_id) - {"zone", "zone_name"} - set(d.vars):
            c.add("zone_id", f"unknown placeholder {{{name}}} (zone, zone_name and vars are known)")
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


# --------------------------------------------------------------------------- loading it


def load(settings: Mapping[str, Any], environ: Mapping[str, str]) -> tuple[dict[str, Any], Found]:
    """The description as plain data: the ``description:`` file, overlaid key by key by
    the other settings (already substituted by the plan loader). Only the file's own
    keys get their ``${ENV}`` substituted here, from ``environ``: substituting the plan's
    part again would replace a ``${...}`` that a secret's value happens to contain."""
    own = {k: v for k, v in settings.items() if k != "description"}
    source = settings.get("description")
    if source is None:
        return own, []
    try:
        loaded = read_yaml(Path(str(source)).expanduser())
    except PlanError as exc:
        return {}, [("description", p.render(str(source))) for p in exc.problems]
    if not isinstance(loaded, Mapping):
        return {}, [("description", f"{source}: {show(loaded)} is not a mapping of description keys")]
    c = Checker(str(source), environ)
    from_file = {str(k): c.env(v, str(k)) for k, v in loaded.items() if k not in own}
    return {**from_file, **own}, _located([(p.path, p.message) for p in c.problems], own, source)


def description_from_settings(settings: Mapping[str, Any],
                              environ: Mapping[str, str]) -> tuple[Description | None, dict[str, Any], Found]:
    """The parsed description, the settings it was read from (the file's keys merged in,
    ``description`` itself gone) and every problem, located for the plan loader."""
    data, problems = load(settings, environ)
    if not data:
        return None, data, problems
    desc, found = read_description(data)
    own = {k: v for k, v in settings.items() if k != "description"}
    problems += _located(found, own, settings.get("description"))
    return (desc if not problems else None), data, problems


def _located(found: Found, own: Mapping[str, Any], source: Any) -> Found:
    """Problems at keys the description file gave (not the plan) are reported under
    ``description``, naming the file and the path inside it."""
    located = []
    for path, message in found:
        top = path.split(".", 1)[0].split("[", 1)[0]
        if source is not None and top not in own:
            located.append(("description", f"{source}: {path + ': ' if path else ''}{message}"))
        else:
            located.append((path, message))
    return located
