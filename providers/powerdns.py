"""PowerDNS Authoritative, through its HTTP API (``/api/v1``, PowerDNS 4.7 and later).

PowerDNS applies one PATCH of a zone's rrsets in one backend transaction: if any
rrset is refused (HTTP 422) nothing changes. That gives cutover atomic applies. What
PowerDNS does not have is a precondition: REPLACE and DELETE overwrite whatever is
there. So the shared step of ``Provider.apply`` reads the zone first and refuses to
send anything when a record set no longer matches the ``before`` the plan was made
against. Between that read and the PATCH another writer could still change a set (a
window of one round trip); the journal's pre-change snapshot and the verification by
DNS after apply are what catch that rare case.
"""

from __future__ import annotations

from typing import Any, Collection, Mapping, Sequence
from urllib.parse import urlparse

from cutover.records import Change, RecordKey, RecordSet, index, shorten
from providers.base import ApplyReceipt, Provider
from providers.httpclient import ApiClient, ApiError, RetryPolicy

#: PowerDNS's record types (its "Supported Record Types" list) that dnspython knows,
#: without SOA (PowerDNS keeps the serial itself) and the DNSSEC types it maintains
#: when it signs (RRSIG, NSEC, NSEC3, NSEC3PARAM) or that are no zone data (TSIG, TKEY).
SUPPORTED_TYPES = frozenset({
    "A", "AAAA", "AFSDB", "APL", "CAA", "CDNSKEY", "CDS", "CERT", "CNAME", "CSYNC", "DNAME",
    "DNSKEY", "DS", "EUI48", "EUI64", "HINFO", "HTTPS", "IPSECKEY", "KEY", "KX", "L32", "L64",
    "LOC", "LP", "MINFO", "MR", "MX", "NAPTR", "NID", "NS", "OPENPGPKEY", "PTR", "RP", "SMIMEA",
    "SPF", "SRV", "SSHFP", "SVCB", "TLSA", "TXT", "URI", "ZONEMD",
})


def zone_id(zone: str) -> str:
    """The API's id for a zone: its absolute name with unsafe characters as ``=XX``.

    PowerDNS escapes everything but letters, digits, ``.``, ``-`` and ``_`` this
    way so that a zone such as ``0/25.2.0.192.in-addr.arpa.`` fits in a URL path."""
    name = zone if zone.endswith(".") else zone + "."
    return "".join(c if c.isalnum() or c in ".-_" else f"={ord(c):02X}" for c in name)


class PowerDNSProvider(Provider):
    """Reads and changes one zone on a PowerDNS server's HTTP API."""

    settings_keys = ("url", "api_key", "server_id")
    required_settings = ("url", "api_key")
    secret_settings = ("api_key",)
    supported_types = SUPPORTED_TYPES
    service = "PowerDNS"

    def __init__(self, zone: str, settings: Mapping[str, Any]) -> None:
        super().__init__(zone, settings)
        url = str(self.settings["url"]).rstrip("/")
        server_id = str(self.settings.get("server_id") or "localhost")
        api_key = str(self.settings["api_key"])
        self.client = ApiClient(
            "PowerDNS",
            url,
            headers={"X-API-Key": api_key},
            secrets=(api_key,),
            policy=RetryPolicy(),
        )
        self.server_id = server_id
        self._zone_path = f"/api/v1/servers/{server_id}/zones/{zone_id(zone)}"

    def __repr__(self) -> str:
        return f"PowerDNSProvider({self.zone!r}, url={self.client.base_url!r})"

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = []
        url = settings.get("url")
        if url is not None:
            parsed = urlparse(str(url))
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                problems.append(("url", f"{shorten(str(url))!r} is not an http(s) URL (expected e.g. http://127.0.0.1:8081)"))
        if "api_key" in settings and not str(settings["api_key"] or "").strip():
            problems.append(("api_key", "is empty"))
        return problems

    # -- reading ----------------------------------------------------------------

    def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
        return self._read(set(wanted))

    def zones(self) -> list[str]:
        """``GET /servers/{id}/zones``: every zone the server holds (without their records)."""
        found = self.client.get(f"/api/v1/servers/{self.server_id}/zones")
        return sorted(str(z["name"]).lower() for z in found if isinstance(z, dict) and z.get("name"))

    def nameservers(self) -> list[str]:
        # The zone's NS rrset is the truth; the API's "nameservers" field only exists on creation.
        apex_ns = index(self._read(set())).get((self.zone, "NS"))
        return [v for v in apex_ns.values] if apex_ns else []

    def _zone(self) -> dict:
        try:
            data = self.client.get(self._zone_path)
        except ApiError as exc:
            if exc.status in (404, 422):
                raise self._error(
                    f"PowerDNS: zone {self.zone} does not exist on {self.client.base_url} "
                    f"(server_id {self.server_id!r}): create it first or check the plan's zone"
                ) from None
            raise
        if not isinstance(data, dict) or not isinstance(data.get("rrsets"), list):
            raise self._error(f"PowerDNS: unexpected answer for zone {self.zone} (no rrsets)")
        return data

    def _read(self, wanted: set[RecordKey]) -> list[RecordSet]:
        result = []
        for rrset in self._zone()["rrsets"]:
            contents = [r["content"] for r in rrset.get("records", ()) if not r.get("disabled")]
            if not contents:
                continue  # only disabled records: DNS does not serve this set
            try:
                rs = RecordSet.build(rrset["name"], rrset["type"], rrset["ttl"], contents)
            except ValueError as exc:
                key = (str(rrset.get("name", "")).lower(), str(rrset.get("type", "")).upper())
                if key in wanted:
                    raise self._error(f"PowerDNS: cannot read {key[0]} {key[1]}: {exc}") from None
                continue  # a PowerDNS-only type (LUA, ALIAS...) that no plan manages
            result.append(rs)
        return result

    # -- writing ----------------------------------------------------------------

    def _apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        """Every change in one PATCH, which PowerDNS applies in one transaction."""
        rrsets = [self._rrset(ch) for ch in changes]
        try:
            self.client.request("PATCH", self._zone_path, json={"rrsets": rrsets})
        except ApiError as exc:
            if exc.status == 422:
                raise self._error(f"{exc} (PowerDNS rejected the whole change; nothing was applied)") from None
            raise
        return ApplyReceipt(atomic=True, detail=f"{len(rrsets)} rrset(s) in one PATCH")

    @staticmethod
    def _rrset(ch: Change) -> dict:
        if ch.after is None or not ch.after.values:
            return {"name": ch.name, "type": ch.type, "changetype": "DELETE"}
        return {
            "name": ch.name,
            "type": ch.type,
            "ttl": ch.after.ttl,
            "changetype": "REPLACE",
            "records": [{"content": v, "disabled": False} for v in ch.after.values],
        }

    def scrub(self, text: str) -> str:
        return self.client.scrub(text)

    def close(self) -> None:
        self.client.close()
