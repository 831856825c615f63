"""The ``http`` provider: the description of a REST API, put to work.

It lists the zone through the description's ``list`` request (following its pages),
and changes it with ``create``/``update``/``delete`` per value or one ``apply``
request. Before anything is sent, the shared step of ``Provider.apply`` compares each
change's ``before`` with a fresh read; that read also gives the entry ids the change
is made with (``ProviderWithIds``), so nothing can change between the check and the ids.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterable, Mapping, Sequence
from urllib.parse import urlparse

from cutover.errors import PartialApplyError, ProviderError, UsageError
from cutover.records import Change, RecordKey, RecordSet, normalise_value, parse_rdata, relative_name, shorten
from providers.base import ApplyReceipt, ProviderWithIds
from providers.httpclient import ApiClient, ApiError, RetryPolicy
from providers.restapi.description import DESCRIPTION_KEYS, Request, description_from_settings
from providers.restapi.template import ReplyMismatch, dig, keys_of, rdata_field, render, text, try_dig

MAX_PAGES = 10_000  # a guard against a server whose pagination never ends


# --------------------------------------------------------------------------- the provider


@dataclass(frozen=True)
class _Entry:
    """One value as listed: its record set key, canonical value, TTL and id."""

    key: RecordKey
    value: str
    ttl: int
    id: Any


class HttpProvider(ProviderWithIds[list[_Entry]]):
    """A DNS API described in YAML (see the package docstring)."""

    settings_keys = ("description", *DESCRIPTION_KEYS)
    required_settings = ()
    #: The secrets sit inside ``auth`` (token, value, password) and never leave this object.
    secret_settings = ()
    #: A description file next to the plan is found from any working directory.
    path_settings = ("description",)
    #: Any type: what an API takes is in its documentation, not in the description, and
    #: a value it refuses fails the request before (or, one by one, as) anything lands.
    supported_types = None

    def __init__(self, zone: str, settings: Mapping[str, Any]) -> None:
        super().__init__(zone, settings)
        desc, _, problems = description_from_settings(self.settings, os.environ)
        if desc is None:
            raise UsageError("http provider: " + "; ".join(f"{p}: {m}" if p else m for p, m in problems))
        self.desc = desc
        self.client = ApiClient(
            desc.service, desc.base_url, headers=desc.auth.headers(), secrets=desc.auth.secrets(), policy=RetryPolicy()
        )
        self._zone_id: str | None = None
        self._nameservers: list[str] | None = None

    def __repr__(self) -> str:
        return f"HttpProvider({self.zone!r}, service={self.desc.service!r}, base_url={self.desc.base_url!r})"

    @property
    def service(self) -> str:
        return self.desc.service

    def scrub(self, text: str) -> str:
        return self.client.scrub(text)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        return cls.prepare_settings(settings, os.environ)[1]

    @classmethod
    def prepare_settings(cls, settings: Mapping[str, Any],
                         environ: Mapping[str, str]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """The description file read once, here: the provider is then built from what was
        read (its keys merged into the settings), not from the file again."""
        if "description" not in settings and "list" not in settings:
            return dict(settings), [("description", "missing: give a description file, or base_url, list and the write sections")]
        desc, data, problems = description_from_settings(settings, environ)
        return (data if desc is not None else dict(settings)), problems

    # -- placeholders -------------------------------------------------------------

    def _vars(self, **more: Any) -> Callable[[str], Any]:
        values = {**self.desc.vars, "zone": self.zone, "zone_name": self.zone.rstrip("."), **more}

        def lookup(name: str) -> Any:
            if name.startswith("value.") and "rdata" in values:
                return rdata_field(values["rdata"], name[len("value."):])
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
                found = [z for z in found if str(try_dig(z, zl.id)) == str(chosen)]
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
                raise ProviderError(f"{self.desc.service}: zone_lookup.nameservers: {zl.nameservers!r} is {keys_of(ns)}, not a list")
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
            raise self._error(f"{self.desc.service}: {where}: {exc} in the reply") from None

    # -- reading --------------------------------------------------------------------

    def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
        return sorted(self._read(set(wanted))[0].values())

    def _pages(self) -> Iterable[Any]:
        """The replies of the listing, page after page."""
        req, params, lookup = self.desc.listing.request, self._first_page(), self._vars()
        for _ in range(MAX_PAGES):
            reply = self._send(req, lookup, params)
            yield reply
            following = self._next_page(reply, req, params)
            if following is None:
                return
            req, params = following
        raise ProviderError(f"{self.desc.service}: listing did not end after {MAX_PAGES} pages")

    def _first_page(self) -> dict[str, Any]:
        pg = self.desc.listing.pagination
        if pg.style != "page":
            return {}
        return {pg.page_param: 1, **({pg.per_page_param: pg.per_page} if pg.per_page_param else {})}

    def _next_page(self, reply: Any, req: Request, params: dict[str, Any]) -> tuple[Request, dict[str, Any]] | None:
        """The request for the page after ``reply``, or None when it was the last."""
        pg = self.desc.listing.pagination
        if pg.style == "page":
            page = params[pg.page_param]
            return None if self._last_numbered(reply, page) else (req, {**params, pg.page_param: page + 1})
        if pg.style == "cursor":
            cursor = try_dig(reply, pg.next_cursor)  # the last page often leaves the cursor out altogether
            return None if cursor in (None, "") else (req, {pg.cursor_param: cursor})
        if pg.style == "link":
            nxt = (self.client.last_links.get("next") or {}).get("url")
            return (Request("GET", self._relative_url(nxt)), {}) if nxt else None
        return None

    def _last_numbered(self, reply: Any, page: int) -> bool:
        """Page-numbered listings end at ``total_pages``, else at an empty or short page."""
        pg = self.desc.listing.pagination
        chunk = self._dig(reply, self.desc.listing.records, "list.records")
        if not chunk:
            return True
        if pg.total_pages:
            where = "list.pagination.total_pages"
            return page >= _number(self._dig(reply, pg.total_pages, where), where, self.desc.service)
        return len(chunk) < pg.per_page

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
                where = f"list.records: {self.desc.listing.records!r}"
                raise ProviderError(f"{self.desc.service}: {where} is {keys_of(chunk)}, not a list of records")
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
                        raise ProviderError(f"{self.desc.service}: list.values: {lst.values!r} is {keys_of(raw)} in {where}, not a list")
                    if raw:
                        sets[key] = RecordSet.build(name, rtype, ttl, [str(v) for v in raw])
            except ValueError as exc:
                if key in wanted:
                    raise self._error(f"{self.desc.service}: cannot read {name} {rtype}: {exc}") from None
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
            raise self._error(f"{self.desc.service}: {where}: {exc} in {which}") from None

    def _value_text(self, entry: Any, rtype: str, where: str) -> str:
        lst = self.desc.listing
        template = lst.value_by_type.get(rtype, lst.value)

        def lookup(name: str) -> Any:
            return self._field(entry, name, f"list.value ({{{name}}})", where)

        rendered = render(template, lookup)
        return _absolute_if_host(rtype, text(rendered))

    # -- writing --------------------------------------------------------------------

    def _apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        """One request per value, or one ``apply`` request for every change."""
        members = self._members(changes)
        apex_ns = (self.zone, "NS")
        if self.desc.listing.per_value and any(ch.key == apex_ns and ch.key not in members and ch.before for ch in changes):
            raise ProviderError(f"{self.desc.service}: the zone's own name servers are not records this API can change")
        if self.desc.apply is None:
            return self._one_by_one(changes, members)
        return self._in_one_request(changes, members)

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
