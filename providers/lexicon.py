"""Any of dns-lexicon's DNS providers (an optional extra: ``pip install 'cutover[lexicon]'``).

Lexicon knows a hundred DNS hosts, each through the same four calls: list records,
create one, update one, delete one. That is enough to move record sets, but less
than cutover asks of a dedicated provider, and this module is honest about it:

* Nothing is atomic. A record set becomes several lexicon calls, sent one after
  the other; a failure half-way raises ``PartialApplyError`` naming the record sets
  that fully landed, so the journal knows exactly what changed.
* Lexicon has no precondition, so the shared step of ``Provider.apply`` reads the
  live zone and compares it with every change's ``before`` first, and nothing is sent
  when one differs.
* Lexicon providers differ in how they quote TXT, qualify names and handle TTLs, and
  some silently do something else than asked. So after each record set's calls the
  zone is read again, and a set that is not exactly what was asked for counts as a
  failure there (with what it holds now in the message), not as landed.
* Values go to lexicon in presentation format (``10 mail.example.net.``, quoted TXT)
  and come back through the same parser as every other provider's.
* A TTL is set through lexicon's ``ttl`` option when a record is created. Where a
  provider keeps a set's old TTL on update (lexicon's PowerDNS does), the set is
  deleted and re-created, which leaves the name without that type for a moment.

The provider class is used directly, with a ``ConfigResolver`` holding the plan's
options: lexicon's ``Client`` would guess the zone from the public suffix list (a
download) or from DNS, while the plan already names the zone.
"""

from __future__ import annotations

import importlib
import urllib.parse
from contextlib import contextmanager
from typing import Any, Collection, Iterator, Mapping, Sequence

from cutover.errors import PartialApplyError, ProviderError, UsageError
from cutover.records import Change, RecordKey, RecordSet, index, normalise_value, shorten
from providers.base import ApplyReceipt, Provider, shown

INSTALL_HINT = "pip install 'cutover[lexicon]'"
#: Option names whose values are credentials: scrubbed from every message.
SECRET_WORDS = ("token", "password", "secret", "key", "auth")
#: The types lexicon's own command line offers (its providers are written for these),
#: CAA, which they pass through as they do TXT, and the host-name types ``presentation``
#: reads (PTR, DNAME, SPF). Each record set is read back after its calls, so a host that
#: takes a type yet stores something else is caught there.
SUPPORTED_TYPES = frozenset({"A", "AAAA", "CAA", "CNAME", "DNAME", "LOC", "MX", "NS", "PTR", "SOA", "SPF", "SRV", "TXT"})


def _lexicon_api() -> tuple[Any, Any]:
    """lexicon's ``ConfigResolver`` and its provider-finder, or ``UsageError`` with the install hint."""
    try:
        from lexicon.config import ConfigResolver
    except ImportError:
        raise UsageError(f"the lexicon provider needs dns-lexicon, which is not installed: {INSTALL_HINT}") from None
    try:
        from lexicon._private.discovery import find_providers  # lexicon 3.17 and later
    except ImportError:  # older 3.x kept the providers in lexicon.providers
        def find_providers() -> dict[str, bool]:
            import pkgutil

            import lexicon.providers as pkg

            return {m.name: True for m in pkgutil.iter_modules(pkg.__path__) if m.name != "base"}
    return ConfigResolver, find_providers


def _provider_module(name: str) -> Any:
    for package in ("lexicon._private.providers", "lexicon.providers"):
        module = f"{package}.{name}"
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
                continue  # not in this lexicon version's layout
            raise UsageError(f"lexicon's {name} provider needs a package that is missing ({exc.name}): "
                             f"pip install 'dns-lexicon[{name}]'") from None
    raise UsageError(f"lexicon has no provider named {name!r}")


class LexiconProvider(Provider):
    """One zone at any DNS host dns-lexicon supports (``provider_name``, ``options``)."""

    settings_keys = ("provider_name", "options")
    required_settings = ("provider_name",)
    #: The credentials sit inside ``options`` and are scrubbed by name (see SECRET_WORDS).
    secret_settings = ()
    supported_types = SUPPORTED_TYPES

    def __init__(self, zone: str, settings: Mapping[str, Any]) -> None:
        super().__init__(zone, settings)
        self._resolver_class, find = _lexicon_api()
        self.provider_name = str(self.settings["provider_name"])
        if self.provider_name not in find():
            raise UsageError(f"lexicon has no provider named {self.provider_name!r}")
        self._class = _provider_module(self.provider_name).Provider
        self.options = dict(self.settings.get("options") or {})
        self._secrets = [str(v) for k, v in self.options.items() if v and any(w in str(k).lower() for w in SECRET_WORDS)]

    def __repr__(self) -> str:
        return f"LexiconProvider({self.zone!r}, provider_name={self.provider_name!r})"

    @property
    def service(self) -> str:
        return f"lexicon {self.provider_name}"

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> list[tuple[str, str]]:
        try:
            _, find = _lexicon_api()
        except UsageError as exc:
            return [("provider_name", str(exc))]
        problems = []
        name = settings.get("provider_name")
        if name is not None:
            available = find()
            if str(name) not in available:
                problems.append(("provider_name", f"{shorten(str(name))!r} is not a lexicon provider"))
            elif not available[str(name)]:
                problems.append(("provider_name", f"lexicon's {name} provider needs extra packages: pip install 'dns-lexicon[{name}]'"))
        options = settings.get("options")
        if options is not None and not isinstance(options, Mapping):
            problems.append(("options", "is not a mapping of the lexicon provider's options"))
        return problems

    # -- talking to lexicon ---------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        """A fresh, authenticated lexicon provider (so no cached zone data survives a
        change), and the ``runtime`` dict whose ``ttl`` is read at each create."""
        runtime: dict[str, Any] = {"ttl": 3600}
        config = self._resolver_class()
        config.with_dict(runtime)  # first source: highest priority, changed per call
        config.with_dict({
            "provider_name": self.provider_name,
            "domain": self.zone.rstrip("."),
            self.provider_name: dict(self.options),
        })
        provider = self._call("connect to", lambda: self._class(config))
        self._call("authenticate with", provider.authenticate)
        try:
            yield provider, runtime
        finally:
            try:
                provider.cleanup()
            except Exception:  # noqa: BLE001 - cleanup trouble must not hide the real outcome
                pass

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ProviderError, UsageError):
            raise
        except Exception as exc:  # noqa: BLE001 - lexicon providers raise anything at all
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise self._error(f"{self.service}: {what} failed: {shorten(detail, 300)}") from None

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}:
                text = text.replace(form, "***")
        return text

    # -- reading ----------------------------------------------------------------------

    def records(self, wanted: Collection[RecordKey] = ()) -> list[RecordSet]:
        with self._session() as (lex, _):
            return sorted(self._read(lex, set(wanted))[0].values())

    def nameservers(self) -> list[str]:
        apex = index(self.records()).get((self.zone, "NS"))
        if apex:
            return list(apex.values)
        return [str(n) for n in self._class.get_nameservers() if isinstance(n, str)]

    def _read(self, lex: Any, wanted: set[RecordKey]) -> tuple[dict[RecordKey, RecordSet], dict[RecordKey, list[dict]]]:
        """The zone as record sets, and each set's lexicon records (for their ids)."""
        members: dict[RecordKey, list[tuple[str, dict]]] = {}
        for rec in self._call(f"listing the records of {self.zone}", lex.list_records) or ():
            name = _absolute(str(rec.get("name", ""))).lower()
            rtype = str(rec.get("type", "")).upper()
            key = (name, rtype)
            try:
                value = normalise_value(rtype, presentation(rtype, str(rec.get("content", ""))))
                ttl = int(rec.get("ttl") or 0)
            except (ValueError, TypeError) as exc:
                if key in wanted:
                    raise self._error(f"{self.service}: cannot read {name} {rtype}: {exc}") from None
                continue
            members.setdefault(key, []).append((value, {**rec, "ttl": ttl}))
        sets = {
            key: RecordSet(key[0], key[1], min(r["ttl"] for _, r in pairs), tuple(sorted({v for v, _ in pairs})))
            for key, pairs in members.items()
        }
        return sets, {k: [r for _, r in pairs] for k, pairs in members.items()}

    # -- writing ----------------------------------------------------------------------

    def _apply(self, changes: Sequence[Change]) -> ApplyReceipt:
        """One record set after the other, each read back; a failure half-way is partial."""
        landed: list[RecordKey] = []
        calls = 0
        for ch in changes:
            counter = _Counter()
            try:
                self._one(ch, counter)
            except ProviderError as exc:
                calls += counter.n
                if calls == 0:
                    raise ProviderError(f"{exc} (nothing was changed)") from None
                done = ", ".join(f"{n} {t}" for n, t in landed) or "no record set completely"
                half = f"; {ch.name} {ch.type} may be half done" if counter.n else ""
                raise PartialApplyError(
                    f"{exc} (lexicon has no transaction: landed {done}{half}; run `cutover diff` to see the zone now)",
                    landed=list(landed),
                ) from None
            calls += counter.n
            landed.append(ch.key)
        return ApplyReceipt(atomic=False, detail=f"{calls} lexicon call(s) for {len(changes)} record set(s), each read back")

    def _one(self, ch: Change, counter: "_Counter") -> None:
        """The lexicon calls for one record set, then a read-back that must match ``after``."""
        with self._session() as (lex, runtime):
            sets, members = self._read(lex, {ch.key})
            have = members.get(ch.key, [])
            want = list(ch.after.values) if ch.after else []
            if ch.after is not None:
                runtime["ttl"] = ch.after.ttl
            have_values = {normalise_value(ch.type, presentation(ch.type, str(r["content"]))): r for r in have}
            for value in want:
                if value not in have_values:
                    self._write(counter, f"creating {ch.name} {ch.type} {shorten(value)}", lex.create_record, ch.type, ch.name, value)
            for value, rec in have_values.items():
                if value not in want:
                    self._write(counter, f"deleting {ch.name} {ch.type} {shorten(value)}", lex.delete_record,
                                rec.get("id"), ch.type, ch.name, None if rec.get("id") else rec.get("content"))
        now = self._now(ch)
        if ch.after is None or now == ch.after:
            return self._verify(ch, now)
        # Values are right, the TTL is not: lexicon's update is its way to set a TTL...
        with self._session() as (lex, runtime):
            runtime["ttl"] = ch.after.ttl
            for rec in self._members(lex, ch):
                self._write(counter, f"updating the TTL of {ch.name} {ch.type}", lex.update_record,
                            rec.get("id"), ch.type, ch.name, str(rec["content"]))
        now = self._now(ch)
        if now == ch.after:
            return
        # ...and where the provider keeps a set's TTL while any value stays, re-create the set.
        with self._session() as (lex, runtime):
            runtime["ttl"] = ch.after.ttl
            for rec in self._members(lex, ch):
                self._write(counter, f"deleting {ch.name} {ch.type} to set its TTL", lex.delete_record,
                            rec.get("id"), ch.type, ch.name, None if rec.get("id") else rec.get("content"))
            for value in ch.after.values:
                self._write(counter, f"re-creating {ch.name} {ch.type} {shorten(value)}", lex.create_record, ch.type, ch.name, value)
        self._verify(ch, self._now(ch))

    def _members(self, lex: Any, ch: Change) -> list[dict]:
        return self._read(lex, {ch.key})[1].get(ch.key, [])

    def _write(self, counter: "_Counter", what: str, fn: Any, *args: Any) -> None:
        self._call(what, fn, *args)
        counter.n += 1

    def _now(self, ch: Change) -> RecordSet | None:
        with self._session() as (lex, _):
            return self._read(lex, {ch.key})[0].get(ch.key)

    def _verify(self, ch: Change, now: RecordSet | None) -> None:
        if now != ch.after:
            raise self._error(
                f"{self.service}: after the calls for {ch.name} {ch.type} the zone holds "
                f"{shown(now)}, not {shown(ch.after)} (this lexicon provider cannot write that value as given)"
            )


class _Counter:
    """How many lexicon write calls went through: 0 means nothing changed."""

    n = 0


def presentation(rtype: str, content: str) -> str:
    """A lexicon record's content in presentation format.

    Lexicon providers tend to hand TXT content back without its outer quotes (the
    PowerDNS one strips exactly those, keeping inner escapes): quote it again."""
    text = content.strip()
    if rtype in ("TXT", "SPF") and not (len(text) >= 2 and text.startswith('"') and text.endswith('"')):
        return f'"{text}"'
    if rtype in ("CNAME", "NS", "PTR", "DNAME"):
        return _absolute(text)
    return text


def _absolute(name: str) -> str:
    name = name.strip()
    return name if name.endswith(".") else name + "."

