"""An audit's results for people and programs: the table, JSON, CSV, and an HTML page.

Everything here reads an ``AuditReport``; nothing asks DNS. Record values and error
details come from other people's DNS servers, so the HTML page escapes every one of
them, and the CSV (opened in a spreadsheet for a mail merge) defuses cells that a
spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
import io
from typing import Any, Sequence

from tabulate import tabulate

from cutover.audit.classify import STATUSES, DomainResult, RecordResult, relative
from cutover.audit.run import AuditReport
from cutover.report_html import CSS as REPORT_CSS, esc, page_start, stamp

#: Order of the statuses in the HTML page: what needs action first.
URGENCY = ("unreachable", "old", "mixed", "elsewhere", "moved")
#: Characters a spreadsheet reads as the start of a formula (OWASP's CSV injection list).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def summary(report: AuditReport) -> str:
    counts = ", ".join(f"{report.counts.get(s, 0):,} {s}" for s in STATUSES if report.counts.get(s))
    total = len(report.results)
    earlier = f" ({report.from_state:,} from an earlier run)" if report.from_state else ""
    return f"{total:,} domain{'s' if total != 1 else ''}: {counts or 'none'}{earlier}"


def table(report: AuditReport) -> str:
    rows = [(domain.name.rstrip("."), result.status, result.detail) for domain, result, _ in report.results]
    text = tabulate(rows, headers=("domain", "status", "detail"), tablefmt="simple", maxcolwidths=[None, None, 100])
    verdict = "every domain has moved" if report.all_moved else "not every domain has moved"
    return f"{text}\n\n{summary(report)}; {verdict}"


def document(report: AuditReport) -> dict[str, Any]:
    """``{"domains": [{"domain", "status", "records", "detail", ...}], "summary", "run"}``."""
    request = report.request
    domains = []
    for domain, result, audited in report.results:
        entry = result.as_dict()
        entry["line"] = domain.line
        if domain.fields:
            entry["fields"] = dict(domain.fields)
        entry["audited"] = stamp(audited) if audited else None
        domains.append(entry)
    return {
        "domains": domains,
        "summary": {"total": len(report.results), "all_moved": report.all_moved,
                    **{s: report.counts.get(s, 0) for s in STATUSES}},
        "old": sorted(request.old),
        "new": sorted(request.new),
        "names": ["@", "www", *request.names],
        "run": {"file": str(request.domains.path), "from_state": report.from_state, "audited": report.audited,
                "questions": report.questions, "seconds": round(report.elapsed, 2),
                "resolvers": [r.endpoint for r in request.resolvers]},
    }


def csv_text(report: AuditReport) -> str:
    """One row a domain, for a mail merge: the domain, the input CSV's own columns, the
    status and the records still to change, in words a customer can act on."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = report.request.domains.columns
    writer.writerow(["domain", *columns, "status", "old_records", "new_records", "other_records", "nameservers", "detail"])
    for domain, result, _ in report.results:
        own = dict(domain.fields)
        writer.writerow([domain.name.rstrip("."), *(own.get(c, "") for c in columns), result.status,
                         *(_cell(_records(result, states)) for states in (("old", "mixed"), ("new", "mixed"), ("other",))),
                         _cell(" ".join(result.nameservers)), _cell(result.detail)])
    return out.getvalue()


def _records(result: DomainResult, states: Sequence[str]) -> str:
    """Whole names (``www.example.com A 198.51.100.10``): the customer reads them, not a DNS admin."""
    return "; ".join(f"{r.name.rstrip('.')} {r.type} {' '.join(r.values)}" for r in result.records if r.state in states)


def _cell(text: str) -> str:
    """Third-party text for a spreadsheet: a leading formula character is quoted away."""
    return "'" + text if text.startswith(FORMULA_START) else text


# --------------------------------------------------------------------------- HTML

CSS = """
.counts { display:flex; flex-wrap:wrap; gap:10px; margin:14px 0; }
.counts .card .share { font-size:22px; font-weight:600; }
table.audit { border-collapse:collapse; width:100%; font-size:13.5px; }
table.audit th, table.audit td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
table.audit th { background:#f1f3f5; position:sticky; top:0; }
table.audit td.records { font-family:ui-monospace, "DejaVu Sans Mono", monospace; font-size:12.5px; overflow-wrap:anywhere; }
table.audit td.detail { overflow-wrap:anywhere; }
.state-moved { background:var(--ok); }
.state-mixed { background:var(--warn); }
.state-elsewhere { background:#5b7083; }
.state-unreachable { background:#333; }
"""


def html_page(report: AuditReport, now: float | None = None) -> str:
    """One self-contained page: counts per status, then every domain, the ones needing
    action first. No script, no external resource; every outside value escaped."""
    generated = stamp(now)
    request = report.request
    cards = "".join(
        f'<div class="card" data-status="{s}"><div class="share">{report.counts.get(s, 0):,}</div>'
        f'<span class="state state-{s}">{s}</span></div>' for s in URGENCY)
    ordered = sorted(report.results, key=lambda item: URGENCY.index(item[1].status) if item[1].status in URGENCY else 0)
    rows = "\n".join(_row(domain.name, result) for domain, result, _ in ordered)
    old = ", ".join(sorted(request.old))
    new = ", ".join(sorted(request.new))
    return f"""{page_start(f"Audit: {request.domains.path.name}", REPORT_CSS + CSS)}
<header class="page">
<h1>DNS audit</h1>
<div>generated <time id="generated" datetime="{esc(generated)}">{esc(generated)}</time>
 &middot; {len(report.results):,} domains from {esc(request.domains.path.name)}</div>
</header>
<main>
<section class="zone" id="summary">
<h2 data-all-moved="{str(report.all_moved).lower()}">{esc(summary(report))}</h2>
<p class="meta">old: <code>{esc(old)}</code> &middot; new: <code>{esc(new)}</code> &middot; asked:
 the apex, www, the MX hosts{esc(''.join(', ' + n for n in request.names))}</p>
<div class="counts">{cards}</div>
</section>
<section class="zone" id="domains">
<h2>Domains</h2>
<table class="audit">
<thead><tr><th>domain</th><th>status</th><th>records</th><th>detail</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</section>
</main>
<footer>Records are what the domains' own authoritative servers serve. "old" and "new" are the
addresses above; other addresses are listed but do not change a status.</footer>
</body>
</html>
"""


def _row(name: str, result: DomainResult) -> str:
    records = "<br>".join(_record(result.domain, r) for r in result.records) or '<span class="empty">none</span>'
    return (f'<tr data-domain="{esc(name)}" data-status="{esc(result.status)}"><td>{esc(name.rstrip("."))}</td>'
            f'<td><span class="state state-{esc(result.status)}">{esc(result.status)}</span></td>'
            f'<td class="records">{records}</td><td class="detail">{esc(result.detail)}</td></tr>')


def _record(domain: str, record: RecordResult) -> str:
    via = f" <span class=\"meta\">({esc(record.via)})</span>" if record.via else ""
    return (f'<span class="state state-{esc(record.state)}">{esc(record.state)}</span> '
            f'{esc(relative(record.name, domain))} {esc(record.type)} {esc(" ".join(record.values))}{via}')
