"""The report of a real cutover, rendered by a real browser.

One cutover runs through the ``cutover`` process against the embedded sandbox
(authoritative server and caching resolvers on loopback, one of them clamping TTLs so
that it keeps the old answer, one dead): prepare, apply, ``watch --once`` and ``watch``
with ``--notify`` webhooks on a loopback HTTP server, then ``cutover report``. The page
is opened in headless Chromium: its DOM is read back (ids, classes, data attributes)
and a screenshot is decoded and checked for content.

Chromium is required (Debian package ``chromium``): without it the test fails, it does
not skip, because a skipped browser test hides a broken page.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import yaml

from cutover.records import RecordSet
from cutover.sandbox import ResolverSpec, Sandbox
from tests.integration.servers import free_port
from tests.test_notify import SECRET, Hook
from tests.test_report import parse

ZONE = "shop.example."
OLD, NEW = "198.51.100.10", "203.0.113.10"
EVIL = "<img src=x onerror=alert(1)>"
RESOLVER_DETAILS = {
    "r1": {"name": "Alpha Resolver", "operator": "Alpha DNS", "country": "DE"},
    "r2": {"name": EVIL, "operator": "Evil & Co", "country": "US"},
    "r3": {"name": "Clamp", "operator": "Clamps TTLs to 600s", "country": "FR"},
    "dead": {"name": "Dead", "operator": "Nobody", "country": "NL"},
}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--mute-audio"]


def cutover(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cutover", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "NO_COLOR": "1"})


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("chromium not found: install the Debian package chromium (apt-get install chromium); "
                    "the report is tested in a real headless browser")
    return path


@pytest.fixture(scope="module")
def cutover_run(tmp_path_factory):
    """A whole cutover through the CLI, with webhooks; yields what the tests look at."""
    tmp = tmp_path_factory.mktemp("report")
    hook = Hook()
    records = [RecordSet.build(f"www.{ZONE}", "A", 2, [OLD]), RecordSet.build(f"mail.{ZONE}", "A", 2, [OLD])]
    specs = [ResolverSpec("r1"), ResolverSpec("r2"), ResolverSpec("r3", ttl_floor=600), ResolverSpec("dead", fail="drop")]
    try:
        with Sandbox(tmp / "zone", ZONE, records, resolvers=specs) as sb:
            resolvers = [{"address": r.address, "port": r.port, **RESOLVER_DETAILS[r.name]} for r in sb.resolvers]
            plan = {
                "version": 1,
                "zone": ZONE,
                "provider": {"type": "sandbox", **sb.provider_settings()},
                "records": [
                    {"name": "www", "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]},
                    {"name": "mail", "type": "A", "ttl": 1, "from": [OLD], "to": [NEW]},
                ],
                "prepare": {"ttl": 1},
                "verify": {"nameservers": [sb.provider_settings()["server"]], "timeout": "10s"},
                "watch": {"resolvers": resolvers, "interval": "0.5s", "timeout": "0.5s"},
                "retire": {"threshold": "60%", "parallel_period": "3s"},
            }
            path = tmp / "plan.yaml"
            path.write_text(yaml.safe_dump(plan), encoding="utf-8")
            other = tmp / "other.yaml"  # a second zone, never applied: its own section
            other.write_text(yaml.safe_dump({**plan, "zone": "other.example."}), encoding="utf-8")

            for name in ("www", "mail"):
                sb.warm(name)  # the caches hold the old answer, r3 for 600s
            results = {"prepare": cutover("prepare", str(path), cwd=tmp)}
            time.sleep(2.2)
            results["apply"] = cutover("apply", str(path), "--yes", cwd=tmp)
            hook_url = hook.url()
            refused = f"http://127.0.0.1:{free_port()}/hooks/{SECRET}"
            results["once"] = cutover("watch", str(path), "--once", "--format", "json", "--notify", hook_url, cwd=tmp)
            time.sleep(3)
            started = time.monotonic()
            results["watch"] = cutover("watch", str(path), "--notify", hook_url, "--notify", refused, cwd=tmp)
            results["watch_seconds"] = time.monotonic() - started
        results["report"] = cutover("report", str(path), str(other), "-o", str(tmp / "report.html"), cwd=tmp)
        results["json"] = cutover("report", str(path), str(other), "--format", "json", cwd=tmp)
        results["status"] = cutover("status", str(path), cwd=tmp)
        for step in ("prepare", "apply", "report", "json", "status"):
            assert results[step].returncode == 0, (step, results[step].stderr)
        assert results["once"].returncode == 1 and results["watch"].returncode == 0, results["watch"].stderr
        yield {"dir": tmp, "html": tmp / "report.html", "hook": hook, "results": results,
               "data": json.loads(results["json"].stdout)}
    finally:
        hook.close()


@pytest.fixture(scope="module")
def dom(cutover_run):
    profile = cutover_run["dir"] / "chromium-profile"
    done = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                           cutover_run["html"].as_uri()], capture_output=True, text=True, timeout=90)
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return parse(done.stdout)


def test_report_page_in_the_browser_shows_the_cutover(cutover_run, dom):
    data = cutover_run["data"]["plans"][0]
    sections = dom.find("section")
    assert [s["data-zone"] for s in sections] == [ZONE, "other.example."]

    kinds = [li["data-kind"] for li in dom.find("li") if "data-kind" in li]
    zone_kinds = [e["kind"] for e in data["timeline"]]
    for kind in ("prepare", "apply", "verify", "watch", "threshold", "stale", "verdict", "ttl", "parallel_period"):
        assert kind in zone_kinds and kind in kinds, kind
    assert kinds.index("prepare") < kinds.index("apply") < kinds.index("verdict")

    series = dom.find("g", **{"class": "series"})
    assert {s["data-record"] for s in series} == {f"www.{ZONE} A", f"mail.{ZONE} A"}
    assert all(int(s["data-points"]) == data["rounds"] >= 2 for s in series)
    assert all(float(s["data-last-share"]) == pytest.approx(2 / 3, abs=1e-3) for s in series)  # r3 still clamps the old answer
    assert dom.find("g", data_threshold="0.6")
    markers = {m["data-marker"] for m in dom.find("g") if "data-marker" in m}
    assert markers == {"change", "ttl", "parallel_period"}

    verdicts = [d for d in dom.find("div") if "data-retire" in d]
    assert [v["data-retire"] for v in verdicts] == ["true", "unknown"]
    assert verdicts[0]["id"] == "verdict-1"


def test_resolver_table_names_and_escapes_outside_data(cutover_run, dom):
    rows = [tr for tr in dom.find("tr") if "data-resolver" in tr and tr.get("data-group") != "authoritative"]
    by_name = {}
    for tr in rows:
        by_name.setdefault(tr["data-resolver"], set()).add((tr["data-record"], tr["data-state"], tr["data-stale"]))
    assert set(by_name) == {"Alpha Resolver", EVIL, "Clamp", "Dead"}
    assert by_name["Clamp"] == {(f"www.{ZONE} A", "old", "true"), (f"mail.{ZONE} A", "old", "true")}
    assert {state for _, state, _ in by_name["Dead"]} == {"timeout"}
    assert {state for _, state, _ in by_name["Alpha Resolver"]} == {"new"}
    assert not dom.find("img") and not dom.find("script")  # the hostile name stayed text
    text = "".join(dom.text)
    assert EVIL in text and "Evil & Co" in text and "Clamps TTLs to 600s" in text


def test_screenshot_is_not_blank(cutover_run):
    shot = cutover_run["dir"] / "report.png"
    profile = cutover_run["dir"] / "chromium-profile-shot"
    done = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                           "--window-size=1280,2000", cutover_run["html"].as_uri()],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    width, height, pixels = read_png(shot)
    assert (width, height) == (1280, 2000)
    colours = {}
    for row in pixels:
        for x in range(0, len(row), 3):
            colours[row[x:x + 3]] = colours.get(row[x:x + 3], 0) + 1
    total = width * height
    background = sum(n for c, n in colours.items() if min(c) >= 245)
    assert total - background > total * 0.05, "the page is (nearly) blank"
    assert len(colours) > 50
    assert colours.get(bytes((0x1D, 0x2A, 0x3A)), 0) > 10_000  # the header band
    assert colours.get(bytes((0xEA, 0xF6, 0xEE)), 0) > 1_000  # the green "retire: yes" box
    assert any(colours.get(bytes.fromhex(c), 0) > 50 for c in ("1f77b4", "2ca02c"))  # a chart series


def test_webhooks_got_each_milestone_once_and_urls_stayed_secret(cutover_run):
    hook, results = cutover_run["hook"], cutover_run["results"]
    texts = hook.texts()
    assert len([t for t in texts if "reached the 60% threshold" in t]) == 1
    assert len([t for t in texts if "still gives the old data after the old TTL expired: Clamp" in t]) == 1
    assert len([t for t in texts if "retire verdict reached" in t]) == 1
    assert all(t.startswith(f"{ZONE}: ") for t in texts) and len(texts) == 3
    for step in ("once", "watch"):
        assert SECRET not in results[step].stdout + results[step].stderr
    assert "gave up" in results["watch"].stderr and "/…" in results["watch"].stderr
    assert results["watch_seconds"] < 5  # a refused webhook did not hold the rounds or the exit


def test_json_and_status_tell_the_same_facts(cutover_run):
    data = cutover_run["data"]
    assert [p["zone"] for p in data["plans"]] == [ZONE, "other.example."]
    zone = data["plans"][0]
    assert zone["verdict"]["retire"] is True and zone["threshold"] == 0.6
    assert {s["label"] for s in zone["series"] if s["reached_at"]} == {f"www.{ZONE} A", f"mail.{ZONE} A"}
    status = cutover_run["results"]["status"].stdout
    assert "retire: yes: 198.51.100.10 can be switched off" in status and "[reached 60%]" in status
    assert "not new: Clamp old TTL" in status and "STALE" in status and "Dead timeout" in status


# ------------------------------------------------------------------ a small PNG reader


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """8-bit RGB/RGBA, non-interlaced PNG -> (width, height, RGB rows). Enough for a screenshot."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        if kind == 1:
            for x in range(bpp, stride):
                line[x] = (line[x] + line[x - bpp]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif kind == 3:
            for x in range(stride):
                line[x] = (line[x] + ((line[x - bpp] if x >= bpp else 0) + prev[x]) // 2) & 255
        elif kind == 4:
            for x in range(stride):
                a = line[x - bpp] if x >= bpp else 0
                b, c = prev[x], prev[x - bpp] if x >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        rows.append(bytes(line) if bpp == 3 else bytes(b for j in range(0, stride, 4) for b in line[j:j + 3]))
    return width, height, rows
