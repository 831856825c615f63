"""The HTTP client of the providers that speak a JSON API over ``requests`` (powerdns,
cloudflare, and the http provider in ``providers.restapi``).

It exists so that every HTTP provider retries the same way and fails the same way:

* Reads (GET) are idempotent, so a dropped connection, a timeout, a 5xx or a 429 is
  retried with exponential backoff, honouring ``Retry-After`` when the server sends it.
* Writes are never retried on a connection error or a 5xx: the server may have
  applied them, and sending a change twice is how records get duplicated. A 429 is
  the exception, because a rate-limited request was by definition not processed.
* Every failure becomes a ``ProviderError`` that quotes the API's own error message,
  with every secret (token, API key) scrubbed out of it, even if the server echoes one.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import requests

from cutover.errors import ProviderError
from cutover.records import shorten

#: Statuses after which a read is worth repeating: the server was busy or broken.
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How patient a client is. The defaults suit an operator waiting at a terminal."""

    retries: int = 3  # extra attempts after the first
    backoff: float = 0.5  # first pause; doubled after each attempt
    max_wait: float = 30.0  # longest single pause we accept, Retry-After included
    connect_timeout: float = 5.0
    read_timeout: float = 30.0


def api_message(response: requests.Response) -> str:
    """The error text an API put in its body, in the common JSON shapes.

    PowerDNS answers ``{"error": "...", "errors": [...]}``; Cloudflare answers
    ``{"success": false, "errors": [{"code": 1000, "message": "..."}]}``.
    Anything else falls back to the start of the body, or the HTTP reason."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return shorten(" ".join(text.split()), 200) if text else response.reason or ""
    if not isinstance(body, Mapping):
        return shorten(str(body), 200)
    parts: list[str] = []
    if isinstance(body.get("error"), str):
        parts.append(body["error"])
    for err in body.get("errors") or ():
        if isinstance(err, Mapping):
            msg = str(err.get("message", "")).strip()
            code = err.get("code")
            parts.append(f"{msg} (code {code})" if code is not None else msg)
        elif isinstance(err, str) and err not in parts:
            parts.append(err)
    if not parts and isinstance(body.get("message"), str):
        parts.append(body["message"])
    return "; ".join(p for p in parts if p) or response.reason or ""


def retry_after(response: requests.Response) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``: seconds or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class ApiError(ProviderError):
    """A provider failure with the HTTP status when there was one (None: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiClient:
    """A ``requests.Session`` bound to one API, its credentials and its retry policy.

    ``service`` names the API in messages ("PowerDNS"); ``secrets`` are scrubbed
    from every message this client produces. The headers holding them are kept on the
    session only, never in ``repr``.
    """

    def __init__(
        self,
        service: str,
        base_url: str,
        headers: Mapping[str, str],
        secrets: Iterable[str] = (),
        policy: RetryPolicy = RetryPolicy(),
        describe: Callable[[requests.Response], str] = api_message,
    ) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.describe = describe
        self.sleep: Callable[[float], None] = time.sleep  # tests replace it to observe pauses
        #: The ``Link`` header (RFC 8288) of the last successful reply, parsed: APIs that
        #: paginate by ``rel="next"`` links (GitHub style) are followed through it.
        self.last_links: dict[str, dict[str, str]] = {}
        self._secrets = tuple(s for s in secrets if s)
        self._session = requests.Session()
        self._session.headers.update({"Accept": "application/json", **headers})

    def __repr__(self) -> str:
        return f"ApiClient({self.service!r}, {self.base_url!r})"

    def close(self) -> None:
        self._session.close()

    # -- requests ---------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Send one request (with the retries its method allows) and return the JSON body.

        A 2xx without a body returns ``None``. Anything else raises ``ProviderError``.
        """
        method = method.upper()
        idempotent = method in ("GET", "HEAD")
        url = self.base_url + path
        attempt = 0
        while True:
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    timeout=(self.policy.connect_timeout, self.policy.read_timeout),
                )
            except requests.RequestException as exc:
                if idempotent and attempt < self.policy.retries:
                    self._pause(attempt, None)
                    attempt += 1
                    continue
                raise self._error(f"{method} {path} failed: {self._reason(exc)}") from None
            retryable = response.status_code == 429 or (
                idempotent and response.status_code in RETRYABLE_STATUS
            )
            if retryable and attempt < self.policy.retries:
                wait = retry_after(response)
                if wait is not None and wait > self.policy.max_wait:
                    raise self._http_error(method, path, response, f"asked to retry after {wait:.0f}s")
                self._pause(attempt, wait)
                attempt += 1
                continue
            if response.ok:
                return self._json(method, path, response)
            raise self._http_error(method, path, response)

    # -- helpers ----------------------------------------------------------------

    def _pause(self, attempt: int, wait: float | None) -> None:
        if wait is None:
            wait = self.policy.backoff * (2**attempt)
        self.sleep(min(wait, self.policy.max_wait))

    def _json(self, method: str, path: str, response: requests.Response) -> Any:
        self.last_links = dict(response.links)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise self._error(f"{method} {path}: the answer is not JSON") from None

    def _http_error(
        self, method: str, path: str, response: requests.Response, extra: str = ""
    ) -> ApiError:
        detail = self.describe(response)
        status = f"HTTP {response.status_code}"
        if response.status_code in (401, 403):
            status += " (check the credentials and their permissions)"
        text = f"{method} {path}: {status}"
        if detail:
            text += f": {detail}"
        if extra:
            text += f" ({extra})"
        return self._error(text, status=response.status_code)

    def _reason(self, exc: requests.RequestException) -> str:
        """Why a request got no answer, in words, without the library's nested reprs."""
        if isinstance(exc, requests.Timeout):
            return "no answer in time (timeout)"
        if isinstance(exc, requests.ConnectionError):
            text = str(exc)
            if "Connection refused" in text:
                return f"connection refused by {self.base_url}"
            if "RemoteDisconnected" in text or "Connection aborted" in text:
                return f"{self.base_url} closed the connection without answering"
            return f"cannot connect to {self.base_url}"
        return type(exc).__name__

    def _error(self, text: str, status: int | None = None) -> ApiError:
        return ApiError(f"{self.service}: {self.scrub(text)}", status)

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced, so no message can leak a credential."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text
