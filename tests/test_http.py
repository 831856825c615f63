"""The shared HTTP client's retry and error rules, against a scripted local http.server."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from cutover.errors import ProviderError
from providers.httpclient import ApiClient, ApiError, RetryPolicy, retry_after
from tests.integration.servers import free_port

SECRET = "tok-" + "x9" * 16


@dataclass
class Reply:
    status: int = 200
    body: object = None  # dict -> JSON, str -> text, None -> empty
    headers: dict = field(default_factory=dict)
    drop: bool = False  # close the connection without any answer
    delay: float = 0.0


class Script:
    """A server that answers each request with the next scripted reply (then 200 {})."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.seen: list[tuple[str, str, dict]] = []
        script = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                script.seen.append((self.command, self.path, dict(self.headers)))
                reply = script.replies.pop(0) if script.replies else Reply(body={})
                time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                if isinstance(reply.body, (dict, list)):
                    data, ctype = json.dumps(reply.body).encode(), "application/json"
                else:
                    data, ctype = (reply.body or "").encode(), "text/plain"
                self.send_response(reply.status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout test): nothing to answer

            do_GET = do_POST = do_PATCH = do_DELETE = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Script]:
    s = Script()
    yield s
    s.stop()


@pytest.fixture
def client(server: Script) -> Iterator[ApiClient]:
    c = ApiClient("TestAPI", server.url, {"Authorization": f"Bearer {SECRET}"}, secrets=[SECRET],
                  policy=RetryPolicy(retries=3, backoff=0.01, max_wait=2, read_timeout=1))
    c.pauses = []  # type: ignore[attr-defined]
    c.sleep = lambda s: (c.pauses.append(s), time.sleep(min(s, 0.05)))  # type: ignore[attr-defined]
    yield c
    c.close()


def test_get_returns_json_and_sends_the_headers(server: Script, client: ApiClient) -> None:
    server.replies = [Reply(body={"ok": 1})]
    assert client.get("/thing", params={"page": 2}) == {"ok": 1}
    method, path, headers = server.seen[0]
    assert (method, path) == ("GET", "/api/thing?page=2")
    assert headers["Authorization"] == f"Bearer {SECRET}"


def test_no_content_is_none(server: Script, client: ApiClient) -> None:
    server.replies = [Reply(status=204)]
    assert client.request("PATCH", "/zone", json={}) is None


def test_get_is_retried_on_5xx_with_growing_backoff(server: Script, client: ApiClient) -> None:
    server.replies = [Reply(503), Reply(502), Reply(body={"ok": True})]
    assert client.get("/x") == {"ok": True}
    assert len(server.seen) == 3
    assert client.pauses == [0.01, 0.02]  # type: ignore[attr-defined]


def test_get_is_retried_after_a_dropped_connection(server: Script, client: ApiClient) -> None:
    server.replies = [Reply(drop=True), Reply(body={"ok": True})]
    assert client.get("/x") == {"ok": True}
    assert len(server.seen) == 2


def test_retry_after_seconds_is_honoured(server: Script, client: ApiClient) -> None:
    client.sleep = time.sleep
    server.replies = [Reply(429, {"error": "slow down"}, {"Retry-After": "1"}), Reply(body={"ok": True})]
    started = time.monotonic()
    assert client.get("/x") == {"ok": True}
    assert time.monotonic() - started >= 1.0


def test_retry_after_http_date_is_understood(server: Script, client: ApiClient) -> None:
    from email.utils import formatdate

    server.replies = [Reply(503, headers={"Retry-After": formatdate(time.time() + 1.5, usegmt=True)}), Reply(body={})]
    client.get("/x")
    [pause] = client.pauses  # type: ignore[attr-defined]
    assert 0.0 < pause <= 1.5


def test_retry_after_too_long_fails_at_once(server: Script, client: ApiClient) -> None:
    server.replies = [Reply(429, {"error": "quota"}, {"Retry-After": "3600"})]
    with pytest.raises(ProviderError, match=r"HTTP 429: quota \(asked to retry after 3600s\)"):
        client.get("/x")
    assert client.pauses == [] and len(server.seen) == 1  # type: ignore[attr-defined]


def test_get_gives_up_after_the_retries(server: Script, client: ApiClient) -> None:
    server.replies = [Reply(500, {"error": "boom"})] * 10
    with pytest.raises(ApiError, match="TestAPI: GET /x: HTTP 500: boom") as err:
        client.get("/x")
    assert err.value.status == 500 and err.value.exit_code == 3
    assert len(server.seen) == 4


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
def test_writes_are_not_retried_on_5xx_or_dropped_connections(server: Script, client: ApiClient, method: str) -> None:
    server.replies = [Reply(500, {"error": "maybe applied"})]
    with pytest.raises(ProviderError, match="HTTP 500: maybe applied"):
        client.request(method, "/w", json={"a": 1})
    server.replies = [Reply(drop=True)]
    with pytest.raises(ProviderError, match="closed the connection"):
        client.request(method, "/w", json={"a": 1})
    assert len(server.seen) == 2


def test_writes_are_retried_on_429(server: Script, client: ApiClient) -> None:
    server.replies = [Reply(429, headers={"Retry-After": "0"}), Reply(body={"done": True})]
    assert client.request("POST", "/w", json={}) == {"done": True}
    assert [m for m, _, _ in server.seen] == ["POST", "POST"]


def test_timeout_is_a_provider_error(server: Script, client: ApiClient) -> None:
    client.policy = RetryPolicy(retries=0, read_timeout=0.2)
    server.replies = [Reply(body={}, delay=0.6)]
    with pytest.raises(ProviderError, match="no answer in time"):
        client.get("/slow")


def test_refused_connection_is_a_provider_error() -> None:
    c = ApiClient("TestAPI", f"http://127.0.0.1:{free_port()}", {}, policy=RetryPolicy(retries=1, backoff=0.01))
    with pytest.raises(ProviderError, match="connection refused"):
        c.get("/x")


def test_secrets_are_scrubbed_even_when_echoed(server: Script, client: ApiClient) -> None:
    server.replies = [Reply(401, {"success": False, "errors": [{"code": 10000, "message": f"bad token {SECRET}"}]})]
    with pytest.raises(ProviderError) as err:
        client.get("/x")
    text = str(err.value)
    assert SECRET not in text and "bad token *** (code 10000)" in text
    assert "check the credentials" in text
    assert SECRET not in repr(client)


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"error": "Conflicts with pre-existing RRset"}, "Conflicts with pre-existing RRset"),
        ({"success": False, "errors": [{"code": 81053, "message": "exists"}, {"code": 1, "message": "two"}]}, "exists (code 81053); two (code 1)"),
        ({"message": "plain"}, "plain"),
        ("Unauthorized", "Unauthorized"),
    ],
)
def test_api_message_shapes(server: Script, client: ApiClient, body, expected: str) -> None:
    server.replies = [Reply(400, body)]
    with pytest.raises(ApiError) as err:
        client.request("POST", "/w")
    assert str(err.value).endswith(f"HTTP 400: {expected}")


def test_retry_after_parsing() -> None:
    class R:
        def __init__(self, value):
            self.headers = {"Retry-After": value} if value is not None else {}

    assert retry_after(R("7")) == 7.0
    assert retry_after(R(None)) is None
    assert retry_after(R("soon")) is None
    assert retry_after(R("-5")) == 0.0
