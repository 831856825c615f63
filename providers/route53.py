"""Amazon Route 53 through boto3.

Route 53 applies a change batch as one transaction, and refuses a DELETE whose TTL
and values are not exactly what it holds. Both are used on purpose: every update is
sent as DELETE(the live set) + CREATE(the new set) in one batch instead of UPSERT, so
a record that someone changed since cutover read it makes the whole batch fail rather
than be silently overwritten (``backend_checks_before``). The DELETE must carry the
live set exactly as Route 53 returned it, so ``_apply`` lists the zone anyway; it
compares each change's ``before`` with that listing too (``refuse_drift``, the shared
comparison), because emulators (and a zone edited a second ago) should not be trusted
to catch drift on their own, and one listing serves both.

Only simple record sets are managed. Alias and routing-policy record sets (weighted,
latency, geolocation, failover, ...) are left out of ``records()`` and any change
aimed at their name and type is refused: replacing them with a plain record set would
quietly throw away the routing someone built.

Credentials, region and endpoint come only from boto3's own chain (``AWS_PROFILE``,
``AWS_ENDPOINT_URL``, instance roles, ...); the plan names at most a profile.

Requests are paced (``provider.rate``, default ``DEFAULT_RATE`` a second, 0: none):
Route 53 throttles API requests per AWS account, not per client, and a fleet plan
runs one provider per zone in several threads. Every HTTP attempt, retries included,
first takes a token from one bucket shared by all providers of the same endpoint and
account in the process (``providers.pacing``), so a fleet keeps to the account's
budget instead of being throttled and backing off. botocore's own "adaptive" retry
mode is no substitute: its bucket is per client and only slows down once refused.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Collection, Iterator, Mapping, Sequence

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ProfileNotFound,
)

from cutover.errors import PartialApplyError, ProviderError, UnsupportedChange, UsageError
from cutover.records import Change, RecordKey, RecordSet, shorten
from providers import pacing
from providers.base import ApplyReceipt, Provider
from providers.route53_wire import batch_keys, change_groups, from_route53_name, from_route53_value, plan_batches, to_route53_name

log = logging.getLogger(__name__)

#: Total attempts per API call unless the boto3 chain (AWS_MAX_ATTEMPTS, profile) says otherwise.
DEFAULT_MAX_ATTEMPTS = 10

#: API requests a second unless the plan sets ``provider.rate``. Route 53 throttles its API
#: per AWS account. The knowledge center's "How do I avoid throttling errors in Route 53?"
#: (repost.aws/knowledge-center/route-53-avoid-throttling-errors) gives the long-documented
#: hard limit of five requests per second per account; the Developer Guide's "Throttling
#: for Amazon Route 53 API requests" (throttling-api-requests.html) now gives the account a
#: bucket of 50 requests refilled at 10 a second (the AWS blog "Introducing change-based
#: throttling for Amazon Route 53 APIs": doubled from 5 to 10), plus a separate limit on
#: record changes a second. 5 keeps to either, and leaves half of the current budget to
#: the console and other tools of the same account.
DEFAULT_RATE = 5.0
#: Requests that may go at once after a pause: one second's worth at the paced rate.
BURST_SECONDS = 1.0

#: Hosted zones found in this run, by (endpoint, account, zone, the plan's hosted_zone_id
#: or ""): a fleet makes a provider per zone and step, and each would otherwise find its
#: zone again, two requests of the account's few a second. A hosted zone's id and
#: delegation set do not change under a running cutover.
_FOUND: dict[tuple[str, str, str, str], dict[str, Any]] = {}
_SHARED_LOCK = threading.Lock()
_LOADER: Any = None  # see _shared_loader

#: The record types Route 53 supports (its "Supported DNS record types").
SUPPORTED_TYPES = frozenset({
    "A", "AAAA", "CAA", "CNAME", "DS", "HTTPS", "MX", "NAPTR", "NS", "PTR", "SOA", "SPF", "SRV",
    "SSHFP", "SVCB", "TLSA", "TXT",
})

#: Route 53 is a global service; its API is signed for this region.
SIGNING_REGION = "us-east-1"

_ZONE_ID = re.compile(r"^(/hostedzone/)?[A-Z0-9]{1,32}$")

# --------------------------------------------------------------------------- reading a zone


@dataclass
class ZoneListing:
    """A zone as listed: the simple record sets, their raw form, and what is held elsewhere."""

    sets: dict[RecordKey, RecordSet] = field(default_factory=dict)
    raw: dict[RecordKey, dict[str, Any]] = field(default_factory=dict)
    held: dict[RecordKey, str] = field(default_factory=dict)

    def add(self, raw: Mapping[str, Any]) -> None:
        name = from_route53_name(raw["Name"])
        key = (name, raw["Type"])
        reason = _held_reason(raw)
        if reason is None:
            try:
                values = [from_route53_value(r["Value"]) for r in raw.get("ResourceRecords", [])]
                self.sets[key] = RecordSet.build(name, raw["Type"], raw["TTL"], values)
            except (ValueError, KeyError) as exc:
                reason = f"a record set whose values cutover cannot read ({exc})"
            else:
                self.raw[key] = {k: raw[k] for k in ("Name", "Type", "TTL", "ResourceRecords")}
                return
        self.held.setdefault(key, reason)


_ROUTING = (
    ("Weight", "weighted"),
    ("Region", "latency"),
    ("GeoLocation", "geolocation"),
    ("GeoProximityLocation", "geoproximity"),
    ("Failover", "failover"),
    ("MultiValueAnswer", "multivalue answer"),
    ("CidrRoutingConfig", "IP-based"),
)


def _held_reason(raw: Mapping[str, Any]) -> str | None:
    """Why a record set is not a simple one cutover may replace, or None when it is."""
    if "AliasTarget" in raw:
        return f"an alias record set (to {raw['AliasTarget'].get('DNSName', '?')})"
    if "TrafficPolicyInstanceId" in raw:
        return f"a record set of traffic policy instance {raw['TrafficPolicyInstanceId']}"
    if "SetIdentifier" in raw:
        policy = next((label for key, label in _ROUTING if key in raw), "routing-policy")
        return f"a {policy} routing record set (SetIdentifier {raw['SetIdentifier']!r})"
    return None


# --------------------------------------------------------------------------- the provider

_ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b")
_SIGNATURE = re.compile(r"(Credential|Signature|X-Amz-Security-Token)=[^\s,&\"']+")


def _scrub(text: str) -> str:
    """Messages from botocore may quote a request; keys and signatures never reach the operator."""
    return _SIGNATURE.sub(r"\1=***", _ACCESS_KEY.sub("***", text))


class Route53Provider(Provider):
    """A Route 53 hosted zone, found by id or by name."""

    settings_keys = ("hosted_zone_id", "profile", "rate")
    supported_types = SUPPORTED_TYPES
    #: Route 53 refuses a DELETE whose values are not the live ones; ``_apply`` also
    #: compares with the listing it needs for those values (see the module docstring).
    backend_checks_before = True

    def __init__(self, zone: str, settings: Mapping[str, Any]) -> None:
        super().__init__(zone, settings)
        configured = settings.get("hosted_zone_id")
        self._zone_id: str | None = configured.strip().rsplit("/", 1)[-1] if configured else None
        self._profile: str | None = settings.get("profile") or None
        self._client: Any = None
        self._account = ""  # whose hosted zones these are (``_account``), set with the client
        self._hosted_zone: dict[str, Any] | None = None
        self.held: dict[RecordKey, str] = {}

    def __repr__(self) -> str:
        return f"Route53Provider(zone={self.zone!r}, hosted_zone_id={self._zone_id!r})"

    @property
    def service(self) -> str:
        """"Route 53 hosted zone Z0123...", once the id is known (given or looked up)."""
        known = self._hosted_zone["HostedZone"]["Id"].rsplit("/", 1)[-1] if self._hosted_zone else self._zone_id
        return f"Route 53 hosted zone {known}" if known else "Route 53"

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = []
        zone_id = settings.get("hosted_zone_id")
        if zone_id is not None and not (isinstance(zone_id, str) and _ZONE_ID.match(zone_id.strip())):
            problems.append(
                ("hosted_zone_id", f"{shorten(repr(zone_id))} is not a Route 53 hosted zone id "
                 "(expected e.g. Z0123456789ABCDEFGHIJ)")
            )
        profile = settings.get("profile")
        if profile is not None and not (isinstance(profile, str) and profile.strip()):
            problems.append(("profile", f"{shorten(repr(profile))} is not an AWS profile name"))
        rate = settings.get("rate")
        if rate is not None and not (isinstance(rate, str) and "${" in rate):  # an unset ${VAR}: reported already
            try:
                _rate(rate)
            except ValueError as exc:
                problems.append(("rate", str(exc)))
        return problems

    # ----------------------------------------------------------------- plumbing

    @property
    def client(self) -> Any:
        """The boto3 client, made on first use so that building a provider costs nothing."""
        if self._client is None:
            with self._errors("set up the AWS session"):
                self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        core = botocore.session.Session(profile=self._profile)
        core.register_component("data_loader", _shared_loader(core))
        session = boto3.Session(botocore_session=core)
        # Standard mode retries Throttling and PriorRequestNotComplete (botocore lists
        # it as both transient and throttling) and connection errors with backoff. A
        # refused ChangeResourceRecordSets did not land, so retrying it is safe (and one
        # whose answer was lost is recognised in ``apply``). An
        # operator's own AWS_MAX_ATTEMPTS / AWS_RETRY_MODE (or profile) still wins.
        retries: dict[str, Any] = {}
        if not (os.environ.get("AWS_RETRY_MODE") or _profile_setting(core, "retry_mode")):
            retries["mode"] = "standard"
        if core.get_config_variable("max_attempts") is None:
            retries["total_max_attempts"] = DEFAULT_MAX_ATTEMPTS
        try:
            rate = DEFAULT_RATE if self.settings.get("rate") is None else _rate(self.settings["rate"])
        except ValueError as exc:
            raise ProviderError(f"route53 settings: provider.rate: {exc}") from None
        client = session.client(
            "route53",
            region_name=session.region_name or SIGNING_REGION,
            config=Config(retries=retries),
        )
        self._account = _account(core)  # the client has resolved its credentials already (session-cached)
        if rate > 0:
            key = (client.meta.endpoint_url, self._account)
            bucket = pacing.shared(key, rate, max(1.0, rate * BURST_SECONDS))
            # before-send fires once per HTTP attempt, retries included, after signing (a
            # wait of seconds is well inside a signature's five minutes); a handler's return
            # value would stand in for the response, so the pacer returns None.
            client.meta.events.register("before-send.route-53", _pacer(bucket), unique_id="cutover-pacing")
        return client

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn every boto failure into one clear ``ProviderError`` line."""
        try:
            yield
        except ClientError as exc:
            error = ProviderError(_scrub(self._client_error(what, exc)))
            error.retried = bool(exc.response.get("ResponseMetadata", {}).get("RetryAttempts"))  # type: ignore[attr-defined]
            raise error from None
        except NoCredentialsError:
            raise ProviderError(
                f"cannot {what}: no AWS credentials found (set AWS_PROFILE, provider.profile, "
                "or the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY variables)"
            ) from None
        except ProfileNotFound:
            raise ProviderError(f"cannot {what}: AWS profile {self._profile!r} is not in the AWS config files") from None
        except (BotoConnectionError, HTTPClientError) as exc:
            raise ProviderError(
                _scrub(f"cannot {what}: Route 53 at {self._endpoint()} is unreachable after retries ({exc})")
            ) from None
        except BotoCoreError as exc:
            raise ProviderError(_scrub(f"cannot {what}: {exc}")) from None

    def _endpoint(self) -> str:
        return self._client.meta.endpoint_url if self._client is not None else "its endpoint"

    def _client_error(self, what: str, exc: Any) -> str:
        error = exc.response.get("Error", {})
        code = error.get("Code") or "error"
        message = error.get("Message") or ""
        attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        tried = f" (after {attempts + 1} attempts)" if attempts else ""
        return f"Route 53 refused to {what}{tried}: {code}: {message}".rstrip(": ")

    # ----------------------------------------------------------------- the hosted zone

    @property
    def zone_id(self) -> str:
        """The hosted zone's id, looked up by name when the plan does not give it."""
        return self.hosted_zone()["Id"].rsplit("/", 1)[-1]

    def hosted_zone(self) -> dict[str, Any]:
        """The HostedZone element of GetHostedZone for the plan's zone."""
        return self._zone_answer()["HostedZone"]

    def _zone_answer(self) -> dict[str, Any]:
        """GetHostedZone's whole answer (it also holds the delegation set), checked to be
        the plan's zone so that a pasted id of another zone cannot be changed by mistake."""
        if self._hosted_zone is None:
            found = (self.client.meta.endpoint_url, self._account, self.zone, self._zone_id or "")
            with _SHARED_LOCK:
                self._hosted_zone = _FOUND.get(found)
        if self._hosted_zone is None:
            zone_id = self._zone_id or self._find_zone_id()
            with self._errors(f"read hosted zone {zone_id}"):
                answer = self.client.get_hosted_zone(Id=zone_id)
            name = from_route53_name(answer["HostedZone"]["Name"])
            if name != self.zone:
                raise ProviderError(
                    f"hosted zone {zone_id} is {name}, not the plan's zone {self.zone}: "
                    "check provider.hosted_zone_id"
                )
            self._hosted_zone = answer
            with _SHARED_LOCK:
                _FOUND[found] = answer
        return self._hosted_zone

    def _find_zone_id(self) -> str:
        matches = self._zones_named(self.zone)
        if not matches:
            raise ProviderError(
                f"no Route 53 hosted zone is named {self.zone} in this AWS account "
                "(check AWS_PROFILE / provider.profile, or set provider.hosted_zone_id)"
            )
        if len(matches) > 1:
            listed = "\n".join(f"  - {_zone_line(hz)}" for hz in matches)
            raise UsageError(
                f"{len(matches)} Route 53 hosted zones are named {self.zone}; "
                f"set provider.hosted_zone_id to the one to change:\n{listed}"
            )
        return matches[0]["Id"].rsplit("/", 1)[-1]

    def _zones_named(self, zone: str) -> list[dict[str, Any]]:
        """Every hosted zone with this exact name (a public and private one may share it)."""
        matches: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"DNSName": to_route53_name(zone)}
        with self._errors(f"look up the hosted zone of {zone}"):
            while True:
                page = self.client.list_hosted_zones_by_name(**kwargs)
                for hz in page.get("HostedZones", []):
                    if from_route53_name(hz["Name"]) != zone:
                        return matches  # listed in name order: nothing later can match
                    matches.append(hz)
                if not page.get("IsTruncated"):
                    return matches
                kwargs = {"DNSName": page["NextDNSName"], "HostedZoneId": page["NextHostedZoneId"]}

    # ----------------------------------------------------------------- the interface

    def zones(self) -> list[str]:
        """Every hosted zone of the account, public and private, by name (a name held by two
        hosted zones is listed once; ``zone_id`` in a single-zone plan tells them apart)."""
        names: list[str] = []
        with self._errors("list the hosted zones"):
            for page in self.client.get_paginator("list_hosted_zones").paginate():
                names += [from_route53_name(hz["Name"]) for hz in page.get("HostedZones", [])]
        return sorted(set(names))

    def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
        """The zone's simple record sets (Route 53 lists whole zones, so ``wanted`` is not
        needed). Alias and routing-policy sets are left out and kept in ``held``."""
        listing = self.list_zone()
        self.held = dict(listing.held)
        return sorted(listing.sets.values())

    def list_zone(self) -> ZoneListing:
        """Every record set of the zone, following every page."""
        zone_id = self.zone_id
        listing = ZoneListing()
        seen: set[tuple[str, str, str | None]] = set()
        with self._errors(f"list the records of hosted zone {zone_id}"):
            pages = self.client.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone_id)
            for page in pages:
                for raw in page.get("ResourceRecordSets", []):
                    ident = (raw["Name"], raw["Type"], raw.get("SetIdentifier"))
                    if ident not in seen:  # a page boundary inside a routing group may repeat one
                        seen.add(ident)
                        listing.add(raw)
        for key, reason in listing.held.items():
            log.debug("not managed: %s %s is %s", key[0], key[1], reason)
        return listing

    def _apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        """The changes as few change batches as Route 53's limits allow, each DELETE with the
        live values; refused before anything is sent when a change would clobber something."""
        zone_id = self.zone_id
        listing = self.list_zone()
        self.held = dict(listing.held)
        self._refuse_held(changes, listing)
        self.refuse_drift(changes, listing.sets)
        batches = plan_batches(change_groups(changes, listing.raw))
        ids: list[str] = []
        landed: list[RecordKey] = []
        for number, batch in enumerate(batches, start=1):
            what = "apply the change batch" if len(batches) == 1 else f"apply change batch {number} of {len(batches)}"
            try:
                with self._errors(what):
                    answer = self.client.change_resource_record_sets(
                        HostedZoneId=zone_id,
                        ChangeBatch={"Comment": "cutover", "Changes": batch},
                    )
            except ProviderError as exc:
                if getattr(exc, "retried", False) and self._holds(batch):
                    # An earlier attempt landed but its answer was lost; the retry was
                    # then refused because the change had already been made.
                    log.info("change batch %d/%d had landed before its retry was refused", number, len(batches))
                    landed.extend(batch_keys(batch))
                    continue
                if landed:
                    raise PartialApplyError(
                        f"{exc}; batches 1-{number - 1} had already landed ({len(landed)} record sets), "
                        "the rest did not",
                        landed,
                    ) from None
                raise
            ids.append(answer["ChangeInfo"]["Id"].rsplit("/", 1)[-1])
            landed.extend(batch_keys(batch))
            log.debug("change batch %d/%d accepted as %s", number, len(batches), ids[-1])
        return ApplyReceipt(
            token=",".join(ids) or None,
            atomic=len(batches) == 1,
            detail=f"{len(batches)} change batch{'es' if len(batches) > 1 else ''}",
        )

    def _holds(self, batch: Sequence[Mapping[str, Any]]) -> bool:
        """True when the zone is exactly in the state ``batch`` leads to."""
        listing = self.list_zone()
        created = {}
        for change in batch:
            if change["Action"] == "CREATE":
                probe = ZoneListing()
                probe.add(change["ResourceRecordSet"])
                created.update(probe.sets)
        for key in batch_keys(batch):
            if listing.sets.get(key) != created.get(key):
                return False
        return True

    def _refuse_held(self, changes: Sequence[Change], listing: ZoneListing) -> None:
        """Refuse, before anything is sent, to replace an alias or routing-policy record set."""
        held = [
            f"{c.name} {c.type} is {listing.held[c.key]}; cutover manages only simple record sets and will "
            "not replace it (change it in Route 53 itself, or leave it out of the plan)"
            for c in changes if c.key in listing.held
        ]
        if held:
            raise UnsupportedChange(f"{self.service} ({self.zone}), nothing was sent: " + "; ".join(held))

    def nameservers(self) -> list[str]:
        answer = self._zone_answer()
        if answer["HostedZone"].get("Config", {}).get("PrivateZone"):
            return []  # served only inside its VPCs; nothing public to poll
        servers = answer.get("DelegationSet", {}).get("NameServers", [])
        return [s.rstrip(".") for s in servers]

    def wait(self, receipt: ApplyReceipt, timeout: float) -> bool:
        """Poll GetChange until every batch is INSYNC; False once ``timeout`` passes."""
        pending = [t for t in (receipt.token or "").split(",") if t]
        deadline = time.monotonic() + timeout
        delay = 1.0
        while pending:
            with self._errors(f"read the status of change {pending[0]}"):
                status = self.client.get_change(Id=pending[0])["ChangeInfo"]["Status"]
            if status == "INSYNC":
                pending.pop(0)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 15.0)
        return True

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _shared_loader(core: Any) -> Any:
    """One botocore data loader for the process: each provider has a session of its own
    (its profile, its credentials), but reading Route 53's API model from disk again for
    each costs about 55 ms, half a minute for a 500-zone fleet. The loader holds only
    the models botocore ships; no credential or setting passes through it."""
    global _LOADER
    with _SHARED_LOCK:
        if _LOADER is None:
            _LOADER = core.get_component("data_loader")
        return _LOADER


def _rate(value: Any) -> float:
    """``provider.rate`` as requests a second (0: no pacing), or ValueError naming the value."""
    try:
        rate = float(str(value).strip())
    except ValueError:
        rate = math.nan
    if isinstance(value, bool) or not (math.isfinite(rate) and rate >= 0):
        raise ValueError(f"{shorten(repr(value))} is not a number of API requests per second "
                         "(expected a number >= 0, e.g. 5; 0 turns pacing off)")
    return rate


def _account(core: Any) -> str:
    """Whose budget the requests count against, as a pacing key: a static access key id
    (the same in every session), else the profile, because temporary credentials get a
    new key id in each provider's session. Only a digest of the key id is kept; the
    secret key is never read."""
    credentials = core.get_credentials()
    if credentials is not None and not isinstance(credentials, RefreshableCredentials):
        return "access key " + hashlib.sha256(credentials.access_key.encode()).hexdigest()[:16]
    return f"profile {core.profile or 'default'}"


def _pacer(bucket: pacing.TokenBucket) -> Any:
    def pace(**_: Any) -> None:
        bucket.take()

    return pace


def _profile_setting(core: Any, key: str) -> Any:
    try:
        return core.get_scoped_config().get(key)
    except Exception:  # a missing profile is reported when the client is made
        return None


def _zone_line(hz: Mapping[str, Any]) -> str:
    kind = "private" if hz.get("Config", {}).get("PrivateZone") else "public"
    comment = hz.get("Config", {}).get("Comment")
    extra = f", {shorten(comment, 40)!r}" if comment else ""
    count = hz.get("ResourceRecordSetCount")
    records = f", {count} record sets" if count is not None else ""
    return f"{hz['Id'].rsplit('/', 1)[-1]} ({kind}{records}{extra})"

