"""What every benchmark script shares: measuring, the machine's description, results, moto.

Benchmarks report figures, they do not pass or fail: a slow or busy machine gives
slower figures, never a red build. Each script writes a JSON document and a Markdown
table to ``benchmarks/results/`` (git-ignored) and prints the table.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from tabulate import tabulate

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


# --------------------------------------------------------------------------- measuring


def rss_mib() -> float:
    """Resident memory now (not the peak), from /proc: what "flat across rounds" is about."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """The process's peak resident memory so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """This process's CPU time plus its finished children's (a round split over processes)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


@dataclass
class Sample:
    wall: float
    cpu: float
    result: Any = None


def measure(fn: Callable[[], Any]) -> Sample:
    """Wall and CPU (user+sys) time of one call, after a collection so earlier garbage is not billed."""
    gc.collect()
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    result = fn()
    return Sample(time.perf_counter() - t0, cpu_seconds() - cpu0, result)


def best_of(fn: Callable[[], Any], repeat: int) -> Sample:
    """The fastest of ``repeat`` calls: on a shared machine the minimum is the least disturbed."""
    samples = [measure(fn) for _ in range(max(1, repeat))]
    return min(samples, key=lambda s: s.wall)


def allow_open_files(wanted: int) -> int:
    """Raise the soft open-files limit towards ``wanted`` (each UDP query in flight holds a socket)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run_json(argv: Sequence[str], timeout: float | None = None, env: dict[str, str] | None = None) -> Any:
    """Run a worker (usually this same script with ``--worker``) and read the JSON it prints last.

    Each measurement runs in a fresh process so that its peak memory and CPU time are its own.
    """
    proc = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE.parent
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- the machine


def machine() -> dict[str, Any]:
    """What the figures were measured on, including how busy the machine was."""
    info: dict[str, Any] = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load": os.getloadavg(),
    }
    with contextlib.suppress(Exception):
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        wanted = ("Model name", "Architecture", "CPU(s)", "Thread(s) per core", "CPU max MHz", "Hypervisor vendor")
        info["lscpu"] = {
            k.strip(): v.strip()
            for k, _, v in (line.partition(":") for line in lscpu.splitlines())
            if k.strip() in wanted
        }
    with contextlib.suppress(Exception):
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    for module in ("dns", "boto3", "botocore", "moto", "octodns", "yaml"):
        with contextlib.suppress(Exception):
            mod = __import__(module)
            info[f"{module}_version"] = getattr(mod, "__version__", None) or getattr(getattr(mod, "version", None), "version", None)
    return info


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


# --------------------------------------------------------------------------- results


OCTODNS_CONFIG = """\
providers:
  config:
    class: octodns.provider.yaml.YamlProvider
    directory: {zones}
    default_ttl: 300
    enforce_order: false
zones:
  {origin}:
    sources: [config]
    targets: []
"""


def octodns_report(records: dict[str, Any], origin: str, servers: Sequence[str], workdir: Path,
                   concurrency: int | None = None, timeout: float = 1800) -> dict[str, Any]:
    """Run ``octodns-report`` (the reference tool: it asks every server for every record
    of a zone, port 53 only) over ``records`` (octodns YAML, by name relative to
    ``origin``); wall and CPU time, rows and timeouts, or ``skipped`` with why."""
    import shutil

    import yaml

    exe = shutil.which("octodns-report") or str(Path(sys.executable).with_name("octodns-report"))
    if not Path(exe).exists():
        return {"skipped": "octodns-report is not installed (pip install -e '.[bench]' in benchmarks/.venv)"}
    zones = workdir / "zones"
    zones.mkdir(exist_ok=True)
    (zones / f"{origin}yaml").write_text(yaml.safe_dump(records))
    config = workdir / "octodns.yaml"
    config.write_text(OCTODNS_CONFIG.format(zones=zones, origin=origin))
    extra = ["--concurrency", str(concurrency)] if concurrency else []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([exe, "--config-file", str(config), "--zone", origin, "--source", "config", *extra, *servers],
                          capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        return {"skipped": f"octodns-report failed: {proc.stderr.strip()[-500:]}"}
    rows = [line for line in proc.stdout.splitlines()[1:] if line.strip()]
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "rows": len(rows), "timeouts": sum(line.count("*timeout*") for line in rows)}


def memory_lines(mem: dict[str, Any] | None, what: str) -> list[str]:
    """The "memory stays flat over rounds" table: RSS after each round, and its growth
    from round 2 (round 1 pays for the imports and the first buffers)."""
    if not mem:
        return []
    rounds = mem["rounds"]
    lines = ["", f"### memory over {len(rounds)} rounds of {mem['names']:,} names ({what}; RSS after each round, after gc)", ""]
    lines.append(table([{k: (fmt(v) if isinstance(v, float) else v) for k, v in r.items()} for r in rounds]))
    growth = rounds[-1]["rss_mib"] - rounds[min(1, len(rounds) - 1)]["rss_mib"]
    lines.append(f"\nRSS from round 2 to round {len(rounds)}: {growth:+.1f} MiB")
    return lines


def table(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    return tabulate([[r.get(c, "") for c in columns] for r in rows], headers=columns, tablefmt="github", floatfmt="g")


def save(name: str, document: dict[str, Any], markdown: str) -> Path:
    """Write ``results/NAME.json`` and ``results/NAME.md``; return the Markdown path."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    path = RESULTS / f"{name}.md"
    path.write_text(markdown + "\n")
    return path


def fmt(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}g}")


# --------------------------------------------------------------------------- moto


FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAMOTOFAKEKEY00000",
    "AWS_SECRET_ACCESS_KEY": "moto-fake-secret-benchmark-0123456789",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    """A loopback port free for both UDP and TCP (a DNS server needs both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free loopback port")


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server, and kill it if it does not go within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def moto_server(log_path: Path | None = None) -> Iterator[str]:
    """``moto_server`` on a free loopback port; sets boto3's environment to it, restores after."""
    port = free_port()
    out = open(log_path or os.devnull, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    saved = {k: os.environ.get(k) for k in (*FAKE_ENV, "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE")}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}"
        os.environ.update(FAKE_ENV)
        os.environ["AWS_ENDPOINT_URL"] = url
        os.environ["AWS_CONFIG_FILE"] = os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        os.environ.pop("AWS_PROFILE", None)
        yield url
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stop(proc)
        out.close()
