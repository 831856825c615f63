"""Route 53's own forms of records and changes: names, values, record sets, change batches.

Pure functions, no I/O: what crosses the API boundary is translated here, and a plan's
changes are cut into requests Route 53 accepts (``plan_batches``), so that both can be
tested and benchmarked without a server. ``providers.route53`` does the talking.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

import dns.name

from cutover.errors import ProviderError
from cutover.records import Change, RecordKey, RecordSet

#: Route 53's limits on one ChangeResourceRecordSets request (UPSERT counts twice).
MAX_RECORDS_PER_REQUEST = 1000
MAX_VALUE_CHARS_PER_REQUEST = 32000

#: Deletes go first so that a name freed in the same plan (a CNAME replaced by an A)
#: is free before something new is created there, also across split batches.
_ACTION_ORDER = {"delete": 0, "update": 1, "create": 2}


# --------------------------------------------------------------------------- text forms
#
# Route 53 writes escapes as three *octal* digits (``\052`` is "*"), where DNS
# presentation format, and so dnspython, uses three *decimal* digits. Everything
# crossing the API boundary is translated; other escapes (``\"``, ``\\``) mean the
# same on both sides and pass through.

_ESCAPE = re.compile(r"\\(\d{3}|.)", re.DOTALL)
_PLAIN_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def _octal_to_decimal(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        digits = m.group(1)
        if len(digits) == 3 and all(d in "01234567" for d in digits):
            return f"\\{int(digits, 8):03d}"
        return m.group(0)

    return _ESCAPE.sub(one, text)


def _decimal_to_octal(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        digits = m.group(1)
        if len(digits) == 3 and digits.isdigit() and int(digits) < 256:
            return f"\\{int(digits):03o}"
        return m.group(0)

    return _ESCAPE.sub(one, text)


def from_route53_name(text: str) -> str:
    """The lower-case, absolute presentation form of a name as Route 53 writes it."""
    return dns.name.from_text(_octal_to_decimal(text)).to_text().lower()


def to_route53_name(name: str) -> str:
    """A name as Route 53 wants it: plain letters, digits, "-", "_", a lone "*"
    wildcard label, and octal escapes for every other byte."""
    labels = []
    for label in dns.name.from_text(name).labels[:-1]:
        if label == b"*":
            labels.append("*")
        else:
            labels.append("".join(chr(b) if b in _PLAIN_NAME_BYTES else f"\\{b:03o}" for b in label))
    return ".".join(labels) + "."


def from_route53_value(text: str) -> str:
    """A value as Route 53 returns it, in DNS presentation format."""
    return _octal_to_decimal(text)


def to_route53_value(text: str) -> str:
    """A canonical presentation-format value as Route 53 wants it."""
    return _decimal_to_octal(text)


# --------------------------------------------------------------------------- change batches


def rrset_dict(rs: RecordSet) -> dict[str, Any]:
    """The ResourceRecordSet element for a simple record set."""
    return {
        "Name": to_route53_name(rs.name),
        "Type": rs.type,
        "TTL": rs.ttl,
        "ResourceRecords": [{"Value": to_route53_value(v)} for v in rs.values],
    }


def change_group(change: Change, live: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The Route 53 changes for one record-set change; they must travel in one request.

    The DELETE carries ``live`` (the record set exactly as Route 53 returned it) when
    given, so that Route 53 compares it with what it holds byte for byte, not with
    cutover's canonical spelling of the same data.
    """
    group: list[dict[str, Any]] = []
    if change.before is not None:
        deleted = dict(live) if live is not None else rrset_dict(change.before)
        group.append({"Action": "DELETE", "ResourceRecordSet": deleted})
    if change.after is not None:
        group.append({"Action": "CREATE", "ResourceRecordSet": rrset_dict(change.after)})
    return group


def change_groups(
    changes: Sequence[Change], live: Mapping[RecordKey, Mapping[str, Any]] | None = None
) -> list[list[dict[str, Any]]]:
    """One group per change, deletes first, then updates, then creates (stable otherwise)."""
    live = live or {}
    ordered = sorted(changes, key=lambda c: _ACTION_ORDER[c.action])
    return [change_group(c, live.get(c.key) if c.before is not None else None) for c in ordered]


def request_cost(change: Mapping[str, Any]) -> tuple[int, int]:
    """(ResourceRecord elements, characters of Value) one change counts for; UPSERT twice,
    because Route 53 counts it as the DELETE plus the CREATE it stands for."""
    records = change["ResourceRecordSet"].get("ResourceRecords", [])
    factor = 2 if change["Action"] == "UPSERT" else 1
    return factor * len(records), factor * sum(len(r["Value"]) for r in records)


def plan_batches(
    groups: Iterable[Sequence[Mapping[str, Any]]],
    max_records: int = MAX_RECORDS_PER_REQUEST,
    max_chars: int = MAX_VALUE_CHARS_PER_REQUEST,
) -> list[list[dict[str, Any]]]:
    """Pack groups of changes, in order, into as few requests as Route 53's limits allow.

    A group (the DELETE and CREATE of one record set) is never split: apart, a failure
    between the two requests would leave the name without any record. A group that
    alone exceeds a limit cannot be sent at all and raises ``ProviderError``.
    """
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    used_records = used_chars = 0
    for group in groups:
        costs = [request_cost(c) for c in group]
        records = sum(r for r, _ in costs)
        chars = sum(c for _, c in costs)
        if records > max_records or chars > max_chars:
            raise ProviderError(_too_big(group, records, chars, max_records, max_chars))
        if current and (used_records + records > max_records or used_chars + chars > max_chars):
            batches.append(current)
            current, used_records, used_chars = [], 0, 0
        current.extend(dict(c) for c in group)
        used_records += records
        used_chars += chars
    if current:
        batches.append(current)
    return batches


def _too_big(group: Sequence[Mapping[str, Any]], records: int, chars: int, max_records: int, max_chars: int) -> str:
    rrset = group[0]["ResourceRecordSet"]
    what = f"{from_route53_name(rrset['Name'])} {rrset['Type']}"
    return (
        f"the change to {what} needs {records} resource records and {chars} characters of values "
        f"in one Route 53 request, which accepts at most {max_records} records and {max_chars} "
        "characters (a replacement counts the old and the new values); make the record set smaller"
    )


def batch_keys(batch: Iterable[Mapping[str, Any]]) -> list[RecordKey]:
    """The record sets a request touches, in order, each once."""
    keys: dict[RecordKey, None] = {}
    for change in batch:
        rrset = change["ResourceRecordSet"]
        keys[(from_route53_name(rrset["Name"]), rrset["Type"])] = None
    return list(keys)
