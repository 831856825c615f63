"""Cloudflare DNS, through the v4 API (``/zones/{id}/dns_records``).

Cloudflare has no record sets: every value is its own record with its own id, TTL
and ``proxied`` flag. This provider groups the records with the same name and type
into one ``RecordSet`` and turns each change into record operations, sent as one
``/dns_records/batch`` request, which Cloudflare executes in one transaction.

Choices worth knowing:

* TTL 1 means "automatic" to Cloudflare, which serves it as 300 s. It is reported as
  300 so that it compares with plans in seconds; the provider remembers which sets
  were automatic (``auto_ttl``) and keeps them automatic when a change asks for 300.
* Proxied records (``proxied: true``, Cloudflare answers with its own addresses) are
  listed in ``proxied`` and reported with their origin values. They are only touched
  when a plan names them, and then keep ``proxied`` (and the automatic TTL proxying
  forces) as they were.
* Changed values re-use existing records through ``patches`` rather than delete and
  re-create, so a record's id, comment, tags and proxy status survive a cutover.
* The zone's own name servers are not among the DNS records the API lists; they are
  reported as the apex NS set (read-only), because that is what the DNS serves.
* Cloudflare has no precondition on a record's old value, so the shared step of
  ``Provider.apply`` compares each change's ``before`` with a fresh read; that read
  also gives the record ids the batch is made of (``ProviderWithIds``), so no change
  can slip in between the check and the ids. The window between the read and the
  batch is one round trip, and apply's verification by DNS afterwards would show a
  loser.
"""

from __future__ import annotations

from typing import Any, Collection, Mapping, Sequence
from urllib.parse import urlparse

import dns.name

from cutover.records import Change, RecordKey, RecordSet, normalise_value, parse_rdata, shorten
from providers.base import ApplyReceipt, ProviderWithIds
from providers.httpclient import ApiClient, ApiError, RetryPolicy

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
AUTO_TTL = 1
AUTO_TTL_SECONDS = 300  # what Cloudflare serves for "automatic"
NS_TTL = 86400  # the TTL Cloudflare serves its own apex NS with
PROXIABLE = frozenset({"A", "AAAA", "CNAME"})
HOST_TYPES = frozenset({"CNAME", "NS", "PTR"})
MAX_PAGES = 10_000  # a guard against a server whose pagination never ends
#: The types whose values ``presentation`` reads and ``write_fields`` writes: a plain
#: ``content`` string, ``priority`` (MX) or the ``data`` fields Cloudflare wants (SRV,
#: CAA). Cloudflare has more (DS, SSHFP, TLSA...), each with ``data`` fields of its own
#: that this provider does not write.
SUPPORTED_TYPES = frozenset({"A", "AAAA", "CAA", "CNAME", "MX", "NS", "PTR", "SRV", "TXT"})


def _absolute(host: str) -> str:
    host = host.strip()
    if host in ("", ".", "@"):
        return "."
    return host if host.endswith(".") else host + "."


def _relative_host(name: dns.name.Name) -> str:
    """A host name as Cloudflare writes it: no final dot (the root stays ".")."""
    return "." if name == dns.name.root else name.to_text(omit_final_dot=True)


def _txt_string(raw: bytes) -> str:
    """One TXT character-string in presentation form, escaping what must be."""
    out = []
    for b in raw:
        if b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def _txt(content: str) -> str:
    """TXT content in presentation form.

    Cloudflare shows TXT content either quoted (``"v=spf1 ..." "more"``) or as the
    bare text, which it splits into 255-byte strings when it serves it. Quoted
    content is already presentation format; bare text is quoted and split here."""
    text = content.strip()
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return text
    raw = content.encode("utf-8")
    chunks = [raw[i: i + 255] for i in range(0, len(raw), 255)] or [b""]
    return " ".join(_txt_string(c) for c in chunks)


def _caa_value(value: str) -> str:
    value = value.strip()
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        return value
    return _txt_string(value.encode("utf-8"))


def presentation(record: Mapping[str, Any]) -> str:
    """The zone-file form of one Cloudflare record's data.

    Handles both ways the API shows structured types: a ``data`` object (SRV: priority,
    weight, port, target; CAA: flags, tag, value) and the ``content`` string (SRV as
    "weight port target" with a separate ``priority``, or all four fields; CAA value
    quoted or not). MX keeps its preference in ``priority``."""
    rtype = str(record.get("type", "")).upper()
    content = str(record.get("content") or "")
    data = record.get("data") if isinstance(record.get("data"), Mapping) else None
    if rtype in HOST_TYPES:
        return _absolute(content)
    if rtype == "MX":
        words = content.split()
        if len(words) == 2:  # some answers carry the preference in the content too
            return f"{words[0]} {_absolute(words[1])}"
        return f"{int(record.get('priority') or 0)} {_absolute(content)}"
    if rtype == "TXT":
        return _txt(content)
    if rtype == "SRV":
        if data and {"priority", "weight", "port", "target"} <= data.keys():
            fields = [data["priority"], data["weight"], data["port"], data["target"]]
        else:
            fields = content.split()
            if len(fields) == 3:
                fields = [record.get("priority") or 0, *fields]
        if len(fields) != 4:
            raise ValueError(f"SRV content {shorten(content)!r} has no priority, weight, port and target")
        return " ".join(str(f) for f in fields[:3]) + " " + _absolute(str(fields[3]))
    if rtype == "CAA":
        if data and {"flags", "tag", "value"} <= data.keys():
            return f"{int(data['flags'])} {data['tag']} {_caa_value(str(data['value']))}"
        parts = content.split(None, 2)
        if len(parts) != 3:
            raise ValueError(f"CAA content {shorten(content)!r} has no flags, tag and value")
        return f"{parts[0]} {parts[1]} {_caa_value(parts[2])}"
    return content


def write_fields(rtype: str, value: str) -> dict[str, Any]:
    """The API fields that carry one canonical value: ``content``, ``priority`` or ``data``."""
    rd: Any = parse_rdata(rtype, value)  # the fields are the type's own (target, exchange, port...)
    if rtype in HOST_TYPES:
        return {"content": _relative_host(rd.target)}
    if rtype == "MX":
        return {"content": _relative_host(rd.exchange), "priority": rd.preference}
    if rtype == "SRV":
        return {"data": {"priority": rd.priority, "weight": rd.weight, "port": rd.port, "target": _relative_host(rd.target)}}
    if rtype == "CAA":
        return {"data": {"flags": rd.flags, "tag": rd.tag.decode("ascii"), "value": rd.value.decode("utf-8", "backslashreplace")}}
    return {"content": value}


class CloudflareProvider(ProviderWithIds[list[tuple[str, dict]]]):
    """Reads and changes one zone through the Cloudflare v4 API with an API token."""

    settings_keys = ("api_token", "zone_id", "base_url")
    required_settings = ("api_token",)
    secret_settings = ("api_token",)
    supported_types = SUPPORTED_TYPES
    service = "Cloudflare"

    #: Records per page when listing; Cloudflare allows more, a fake server may allow fewer.
    per_page = 100

    def __init__(self, zone: str, settings: Mapping[str, Any]) -> None:
        super().__init__(zone, settings)
        token = str(self.settings["api_token"])
        self.client = ApiClient(
            "Cloudflare",
            str(self.settings.get("base_url") or DEFAULT_BASE_URL),
            headers={"Authorization": f"Bearer {token}"},
            secrets=(token,),
            policy=RetryPolicy(),
        )
        self._zone_id: str | None = str(self.settings["zone_id"]) if self.settings.get("zone_id") else None
        self._zone_info: dict | None = None
        #: Keys of record sets holding proxied records (reported, left alone unless planned).
        self.proxied: set[RecordKey] = set()
        #: Keys of record sets with the automatic TTL (1), reported as 300 s.
        self.auto_ttl: set[RecordKey] = set()

    def __repr__(self) -> str:
        return f"CloudflareProvider({self.zone!r}, zone_id={self._zone_id!r})"

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = []
        if "api_token" in settings and not str(settings["api_token"] or "").strip():
            problems.append(("api_token", "is empty"))
        base = settings.get("base_url")
        if base is not None:
            parsed = urlparse(str(base))
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                problems.append(("base_url", f"{shorten(str(base))!r} is not an http(s) URL (expected e.g. {DEFAULT_BASE_URL})"))
        return problems

    # -- the zone ---------------------------------------------------------------

    @property
    def zone_name(self) -> str:
        return self.zone.rstrip(".").lower()

    def zone_id(self) -> str:
        """The zone's id: from the settings (checked to be this zone) or looked up by name."""
        if self._zone_info is not None:
            return self._zone_info["id"]
        if self._zone_id:
            try:
                info = self._result(self.client.get(f"/zones/{self._zone_id}"), "the zone")
            except ApiError as exc:
                if exc.status in (400, 404):
                    raise self._error(f"Cloudflare: zone_id {self._zone_id!r} is not a zone this token can see ({exc})") from None
                raise
            if str(info.get("name", "")).rstrip(".").lower() != self.zone_name:
                raise self._error(
                    f"Cloudflare: zone_id {self._zone_id!r} is the zone {info.get('name')!r}, not {self.zone_name!r}"
                )
        else:
            found = self._result(self.client.get("/zones", params={"name": self.zone_name, "per_page": 50}), "zones") or []
            if not found:
                raise self._error(
                    f"Cloudflare: no zone named {self.zone_name} is visible to this API token "
                    "(check the zone name and the token's Zone:Read permission, or set zone_id)"
                )
            if len(found) > 1:
                ids = ", ".join(str(z.get("id")) for z in found)
                raise self._error(
                    f"Cloudflare: {len(found)} zones are named {self.zone_name} (ids {ids}); set zone_id in the plan"
                )
            info = found[0]
        self._zone_info = info
        self._zone_id = str(info["id"])
        return self._zone_id

    def _result(self, body: Any, what: str) -> Any:
        """The ``result`` of a v4 envelope; an envelope saying ``success: false`` is an error."""
        if not isinstance(body, dict) or "result" not in body:
            raise self._error(f"Cloudflare: the answer for {what} is not a v4 API envelope")
        if body.get("success") is False:
            errors = "; ".join(str(e.get("message", e)) for e in body.get("errors") or () if isinstance(e, dict))
            raise self._error(f"Cloudflare: reading {what} failed: {errors or 'success: false'}")
        return body["result"]

    def nameservers(self) -> list[str]:
        self.zone_id()
        assert self._zone_info is not None
        return [_absolute(ns).lower() for ns in self._zone_info.get("name_servers") or ()]

    # -- reading ----------------------------------------------------------------

    def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
        sets, _ = self._read(set(wanted))
        return sorted(sets.values())

    def _list(self) -> list[dict]:
        zid = self.zone_id()
        records: list[dict] = []
        page = 1
        while page <= MAX_PAGES:
            body = self.client.get(f"/zones/{zid}/dns_records", params={"page": page, "per_page": self.per_page})
            chunk = self._result(body, "DNS records") or []
            records.extend(chunk)
            total_pages = int((body.get("result_info") or {}).get("total_pages") or 1)
            if not chunk or page >= total_pages:
                return records
            page += 1
        raise self._error(f"Cloudflare: listing the records of {self.zone_name} did not end after {MAX_PAGES} pages")

    def _read(self, wanted: set[RecordKey]) -> tuple[dict[RecordKey, RecordSet], dict[RecordKey, list[tuple[str, dict]]]]:
        """The zone as record sets, and for each set its (canonical value, record) pairs."""
        members: dict[RecordKey, list[tuple[str, dict]]] = {}
        for rec in self._list():
            key = (_absolute(str(rec.get("name", ""))).lower(), str(rec.get("type", "")).upper())
            try:
                value = normalise_value(key[1], presentation(rec))
            except ValueError as exc:
                if key in wanted:
                    raise self._error(f"Cloudflare: cannot read {key[0]} {key[1]}: {exc}") from None
                continue  # a type cutover does not know and no plan manages
            members.setdefault(key, []).append((value, rec))
        self.proxied = {k for k, pairs in members.items() if any(r.get("proxied") for _, r in pairs)}
        self.auto_ttl = {k for k, pairs in members.items() if any(r.get("ttl") == AUTO_TTL for _, r in pairs)}
        sets = {}
        for key, pairs in members.items():
            ttl = min(AUTO_TTL_SECONDS if r.get("ttl") == AUTO_TTL else int(r.get("ttl") or 0) for _, r in pairs)
            sets[key] = RecordSet(key[0], key[1], ttl, tuple(sorted({v for v, _ in pairs})))
        apex_ns = (self.zone, "NS")
        if apex_ns not in sets and self.nameservers():
            sets[apex_ns] = RecordSet.build(self.zone, "NS", NS_TTL, self.nameservers())
        return sets, members

    # -- writing ----------------------------------------------------------------

    def _apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        """Every change as record operations in one ``dns_records/batch`` request."""
        members = self._members(changes)
        if any(ch.key == (self.zone, "NS") and ch.key not in members for ch in changes):
            raise self._error("Cloudflare: the zone's own name servers cannot be changed through DNS records")
        batch: dict[str, list] = {"deletes": [], "patches": [], "posts": []}
        for ch in changes:
            self._operations(ch, members.get(ch.key, []), batch)
        body = {k: v for k, v in batch.items() if v}
        if not body:
            return ApplyReceipt(detail="nothing to send")
        self._send_batch(body)
        count = sum(len(v) for v in body.values())
        return ApplyReceipt(atomic=True, detail=f"{count} record operation(s) in one batch")

    def _send_batch(self, body: Mapping[str, list]) -> None:
        try:
            self.client.request("POST", f"/zones/{self.zone_id()}/dns_records/batch", json=body)
        except ApiError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                raise self._error(f"{exc} (Cloudflare refused the whole batch; nothing was applied)") from None
            raise self._error(
                f"{exc} (whether the batch was applied is unknown: run `cutover diff` before retrying)"
            ) from None

    def _write_ttl(self, ch: Change) -> int:
        assert ch.after is not None
        if ch.key in self.proxied:
            return AUTO_TTL  # Cloudflare forces the automatic TTL on proxied records
        if ch.key in self.auto_ttl and ch.after.ttl == AUTO_TTL_SECONDS:
            return AUTO_TTL  # unchanged in effect: keep the operator's "automatic"
        return ch.after.ttl

    def _operations(self, ch: Change, have: list[tuple[str, dict]], batch: dict[str, list]) -> None:
        """Add the record operations that turn ``have`` into ``ch.after`` to ``batch``."""
        want = list(ch.after.values) if ch.after else []
        have_values = {v for v, _ in have}
        keep = [r for v, r in have if v in want]
        gone = [r for v, r in have if v not in want]
        new = [v for v in want if v not in have_values]
        if not want:
            batch["deletes"].extend({"id": r["id"]} for _, r in have)
            return
        ttl = self._write_ttl(ch)
        batch["patches"].extend({"id": r["id"], "ttl": ttl} for r in keep if r.get("ttl") != ttl)
        for rec, value in zip(gone, new):  # re-use a record: keeps its id, comment, tags, proxy
            batch["patches"].append({"id": rec["id"], "type": ch.type, "ttl": ttl, **write_fields(ch.type, value)})
        batch["deletes"].extend({"id": r["id"]} for r in gone[len(new):])
        name = ch.name.rstrip(".")
        for value in new[len(gone):]:
            post: dict[str, Any] = {"name": name, "type": ch.type, "ttl": ttl, **write_fields(ch.type, value)}
            if ch.type in PROXIABLE:
                post["proxied"] = ch.key in self.proxied
            batch["posts"].append(post)

    def scrub(self, text: str) -> str:
        return self.client.scrub(text)

    def close(self) -> None:
        self.client.close()
