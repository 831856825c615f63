"""The cutover report as one self-contained HTML file.

The page is mailed, attached to tickets and opened years later, so it carries
everything inside: CSS in a ``<style>``, charts as inline SVG, no script, no font, no
image, no link that leaves the file. Every value that came from outside -- record
values, resolver names and operators, error details -- goes through ``html.escape``;
the markup around them is ours.

Elements carry ids, classes and ``data-`` attributes (``data-kind`` on timeline
entries, ``data-record`` on chart series, ``data-retire`` on the verdict) so that
tests and scripts can read the page as data.
"""

from __future__ import annotations

import html
import time
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from cutover.report import Marker, Point, ResolverRow, Series, ZoneReport, _ts

#: Series colours: distinct from the marker colours (red threshold, orange TTL, purple period).
PALETTE = ("#1f77b4", "#2ca02c", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#393b79", "#637939")
MARKER_COLOUR = {"change": "#444444", "ttl": "#ff7f0e", "parallel_period": "#9467bd"}
THRESHOLD_COLOUR = "#d62728"
CONDITION_LABEL = {"propagation": "Propagation", "ttl": "Old TTL expired", "parallel_period": "Parallel period over"}

#: Above this many drawn points per record the chart shows the line without dots.
MAX_DOTS = 400
# Chart geometry (SVG user units).
WIDTH, HEIGHT = 960, 340
LEFT, RIGHT, TOP, BOTTOM = 56, 28, 30, 50

CSS = """
:root { --ok:#1b7f3b; --warn:#b36b00; --fail:#b3261e; --due:#5b5b9a; --muted:#666; --line:#ddd; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color:#1d1d1f; background:#fafafa; margin:0; }
header.page { background:#1d2a3a; color:#fff; padding:20px 32px; }
header.page h1 { margin:0 0 4px; font-size:24px; }
header.page nav a { color:#cfe3ff; margin-right:14px; }
main { padding: 8px 32px 40px; max-width: 1200px; }
section.zone { background:#fff; border:1px solid var(--line); border-radius:8px; padding:18px 24px; margin:22px 0; }
section.zone h2 { margin:0 0 4px; font-size:22px; }
h3 { margin:22px 0 8px; font-size:17px; }
.meta { color:var(--muted); margin:0 0 12px; }
.old-mail-refuses { border-left:4px solid #c0392b; padding:6px 10px; background:#fdecea; }
.verdict { border-radius:8px; padding:12px 16px; border:2px solid; }
.verdict.retire-yes { border-color:var(--ok); background:#eaf6ee; }
.verdict.retire-no { border-color:var(--warn); background:#fff5e6; }
.verdict.retire-unknown { border-color:#999; background:#f2f2f2; }
.verdict h3 { margin:0 0 6px; }
.verdict ul { margin:0; padding-left:0; list-style:none; }
.verdict li { margin:3px 0; }
.verdict li::before { display:inline-block; width:1.4em; font-weight:bold; }
.verdict li.met::before { content:"\\2713"; color:var(--ok); }
.verdict li.unmet::before { content:"\\2717"; color:var(--fail); }
.cards { display:flex; flex-wrap:wrap; gap:10px; margin:12px 0; }
.card { border:1px solid var(--line); border-radius:6px; padding:8px 12px; min-width:210px; }
.card .share { font-size:22px; font-weight:600; }
.card.reached .share { color:var(--ok); }
.card.behind .share { color:var(--warn); }
figure.chart { margin:0; }
figure.chart svg { width:100%; height:auto; max-width:960px; display:block; }
.legend { display:flex; flex-wrap:wrap; gap:14px; font-size:13px; margin:6px 0 0; padding:0; list-style:none; }
.legend .swatch { display:inline-block; width:14px; height:4px; vertical-align:middle; margin-right:5px; }
.legend .swatch.dashed { background:repeating-linear-gradient(90deg, currentColor 0 5px, transparent 5px 9px); height:3px; }
ol.timeline { list-style:none; padding:0; margin:0; border-left:3px solid var(--line); }
ol.timeline li { position:relative; padding:4px 0 8px 18px; }
ol.timeline li::before { content:""; position:absolute; left:-8px; top:10px; width:11px; height:11px;
                         border-radius:50%; background:#999; border:2px solid #fff; }
ol.timeline li.status-ok::before { background:var(--ok); }
ol.timeline li.status-warn::before { background:var(--warn); }
ol.timeline li.status-fail::before { background:var(--fail); }
ol.timeline li.status-due::before { background:#fff; border-color:var(--due); }
ol.timeline time { font-family:ui-monospace, "DejaVu Sans Mono", monospace; font-size:13px; color:var(--muted); margin-right:10px; }
ol.timeline .title { font-weight:600; }
ol.timeline .detail { display:block; color:#333; font-size:13.5px; overflow-wrap:anywhere; }
ol.timeline li.status-due .title { color:var(--due); }
table.resolvers { border-collapse:collapse; width:100%; font-size:13.5px; }
table.resolvers th, table.resolvers td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
table.resolvers th { background:#f1f3f5; position:sticky; top:0; }
table.resolvers td.addr, table.resolvers td.ttl, table.resolvers td.time {
  font-family:ui-monospace, "DejaVu Sans Mono", monospace; font-size:12.5px; }
table.resolvers tr.authoritative td { background:#f7f7fb; }
.state { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12.5px; font-weight:600; color:#fff; background:#777; }
.state-new { background:var(--ok); }
.state-old { background:var(--fail); }
.state-other { background:var(--warn); }
.state-filtered { background:#5b7083; }
.badge { display:inline-block; padding:0 6px; border-radius:4px; font-size:12px; font-weight:600; }
.badge.stale { background:#fde2e1; color:var(--fail); border:1px solid var(--fail); }
.badge.auth { background:#e4e4f4; color:#333; }
.empty { color:var(--muted); font-style:italic; }
.failure { color:var(--fail); font-weight:600; }
footer { color:var(--muted); font-size:12.5px; padding:0 32px 30px; }
@media print { body { background:#fff; } section.zone { break-inside:avoid-page; border:none; } }
"""


def esc(value: Any) -> str:
    """Text or attribute content: everything that is not our own markup goes through here."""
    return html.escape("" if value is None else str(value), quote=True)


def pct(share: float | None) -> str:
    if share is None:
        return "-"
    text = f"{share * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


# --------------------------------------------------------------------------- page


def stamp(now: float | None = None) -> str:
    """A page's "generated" time: UTC, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))


def page_start(title: str, css: str) -> str:
    """A self-contained page's opening, up to ``<body>``: no script, no outside resource."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="cutover">
<title>{esc(title)}</title>
<style>{css}</style>
</head>
<body>"""


#: Zones named in the page's title; more are counted.
TITLE_ZONES = 5


def fleet_section(summary: Mapping[str, Any]) -> str:
    """A fleet's summary: how many zones, in which state, how many ready to retire."""
    states = ", ".join(f"{n:,} {esc(state)}" for state, n in summary["states"].items()) or "none"
    failed = list(summary.get("failed_zones", ()))
    shown = ", ".join(esc(z.rstrip(".")) for z in failed[:20]) + (f", +{len(failed) - 20:,} more" if len(failed) > 20 else "")
    rows = [("zones", f"{summary['zones']:,}"), ("acted on", f"{summary['acted_on']:,}: {states}"),
            ("ready to retire", f"{summary.get('retire', 0):,} of {summary['acted_on']:,}")]
    if failed:
        rows.append(("failed", shown))
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<section class="fleet"><h2>Fleet {esc(summary["plan"])}</h2><table>{body}</table></section>'


def render(reports: Sequence[ZoneReport | Mapping[str, Any]], now: float | None = None,
           fleets: Sequence[Mapping[str, Any]] = ()) -> str:
    """The whole page. ``reports`` may hold failures (dicts with ``zone`` and ``error``);
    ``fleets`` are fleet summaries (``FleetRun.summary``), shown above the zones."""
    generated = stamp(now)
    zones = [r.zone if isinstance(r, ZoneReport) else str(r.get("zone", "?")) for r in reports]
    nav = "".join(f'<a href="#zone-{i}">{esc(z)}</a>' for i, z in enumerate(zones, 1))
    sections = "\n".join(
        zone_section(r, i) if isinstance(r, ZoneReport) else failure_section(r, i) for i, r in enumerate(reports, 1)
    )
    title = "Cutover report: " + (", ".join(zones) if len(zones) <= TITLE_ZONES else f"{len(zones):,} zones")
    from cutover.report_world import CSS as WORLD_CSS  # here: report_world draws with this module's esc()
    return f"""{page_start(title, CSS + WORLD_CSS)}
<header class="page">
<h1>Cutover report</h1>
<div>generated <time id="generated" datetime="{esc(generated)}">{esc(generated)}</time>
 &middot; {len(zones)} zone{'s' if len(zones) != 1 else ''}</div>
<nav>{nav}</nav>
{"".join(fleet_section(f) for f in fleets)}
</header>
<main>
{sections}
</main>
<footer>All times are UTC. Shares count the resolvers that answered (new, old or other); failed and filtered answers are left out.
The verdict needs all three conditions.</footer>
</body>
</html>
"""


def failure_section(doc: Mapping[str, Any], index: int) -> str:
    return (f'<section class="zone failed" id="zone-{index}" data-zone="{esc(doc.get("zone"))}">'
            f'<h2>{esc(doc.get("zone"))}</h2><p class="meta">{esc(doc.get("plan"))}</p>'
            f'<p class="failure">No report: {esc(doc.get("error"))}</p></section>')


def zone_section(r: ZoneReport, index: int) -> str:
    from cutover.report_world import world_section  # here: report_world draws with this module's esc()

    change = (f"change at <time>{esc(r.change_time)}</time> ({esc(r.change_source)})"
              if r.change_time else esc(r.change_source))
    rounds = (f"{r.rounds} watch round{'s' if r.rounds != 1 else ''}, "
              f"<time>{esc(r.first_round)}</time> to <time>{esc(r.last_round)}</time>" if r.rounds else "not watched yet")
    return f"""<section class="zone" id="zone-{index}" data-zone="{esc(r.zone)}">
<h2>{esc(r.zone)}</h2>
<p class="meta">plan {esc(r.plan)} &middot; {change} &middot; {rounds} &middot; threshold {esc(pct(r.threshold))}</p>
{verdict_block(r, index)}
{old_mail_block(r)}
<h3>Propagation</h3>
{cards(r)}
{chart(r, index)}
{world_section(r, index)}
<h3>Timeline</h3>
{timeline_list(r, index)}
<h3>Resolvers</h3>
{resolver_table(r.resolvers, index)}
</section>"""


def old_mail_block(r: ZoneReport) -> str:
    """The parallel period's check of the old MX: does it still take the mail caches send it?"""
    old = r.old_mail
    if not old:
        return ""
    hosts = esc(", ".join(old.get("hosts") or []))
    if old.get("accepting"):
        return f'<p class="meta">old MX {hosts} still accepted mail when checked at <time>{esc(old.get("checked"))}</time></p>'
    return (f'<p class="old-mail-refuses"><strong>The old mail server refuses mail</strong> '
            f'(checked <time>{esc(old.get("checked"))}</time>): {esc(old.get("message"))}</p>')


# --------------------------------------------------------------------------- verdict


def verdict_block(r: ZoneReport, index: int) -> str:
    v = r.verdict
    if not v:
        return (f'<div class="verdict retire-unknown" id="verdict-{index}" data-retire="unknown">'
                "<h3>Retire the old server: unknown</h3>"
                "<p>No watch round is journalled yet: run <code>cutover watch</code>.</p></div>")
    retire = bool(v.get("retire"))
    head = "yes" if retire else "not yet"
    earliest = v.get("earliest")
    when = "" if retire else (f" &middot; earliest <time>{esc(earliest)}</time>" if earliest
                              else " &middot; earliest: unknown until every record has propagated")
    items = []
    for c in v.get("conditions", []):
        met = bool(c.get("met"))
        at = f' data-at="{esc(c["at"])}"' if c.get("at") else ""
        items.append(f'<li class="condition {"met" if met else "unmet"}" data-condition="{esc(c.get("name"))}" '
                     f'data-met="{str(met).lower()}"{at}><strong>{esc(CONDITION_LABEL.get(c.get("name"), c.get("name")))}:</strong> '
                     f'{esc(c.get("reason"))}</li>')
    missing = ", ".join(v.get("missing", []))
    return (f'<div class="verdict retire-{"yes" if retire else "no"}" id="verdict-{index}" data-retire="{str(retire).lower()}" '
            f'data-missing="{esc(missing)}" data-earliest="{esc(earliest or "")}">'
            f"<h3>Retire the old server: {head}{when}</h3><ul>{''.join(items)}</ul></div>")


# --------------------------------------------------------------------------- propagation


def cards(r: ZoneReport) -> str:
    if not r.series:
        return ""
    out = []
    for s in r.series:
        last = s.points[-1]
        ok = s.reached_at is not None
        since = f"at threshold since <time>{esc(s.reached_at)}</time>" if ok else "below the threshold"
        out.append(f'<div class="card {"reached" if ok else "behind"}" data-record="{esc(s.label)}">'
                   f'<div>{esc(s.label)}</div><div class="share">{esc(pct(last.share))}</div>'
                   f'<div class="meta">{last.new} of {last.answering} answering new &middot; {since}</div></div>')
    return f'<div class="cards">{"".join(out)}</div>'


def chart(r: ZoneReport, index: int) -> str:
    """Share of new answers per record over time, with the threshold and the verdict's moments."""
    if not r.series:
        return f'<p class="empty" id="chart-{index}">No watch rounds yet, so nothing to chart.</p>'
    times = [_ts(p.time) for s in r.series for p in s.points]
    generated = _ts(r.generated) if r.generated else max(times)
    on_chart = [m for m in r.markers if m.passed or _ts(m.time) <= max(times)]
    ahead = [m for m in r.markers if m not in on_chart]
    start = min(times + [_ts(m.time) for m in on_chart])
    end = max(times + [_ts(m.time) for m in on_chart] + [min(generated, max(times))])
    if end - start < 1:
        start, end = start - 30, end + 30
    x = _scale(start, end, LEFT, WIDTH - RIGHT)
    y = _scale(0.0, 1.0, HEIGHT - BOTTOM, TOP)
    parts = [_grid(x, y, start, end)]
    ty = y(r.threshold)
    parts.append(f'<g class="threshold" data-threshold="{r.threshold:g}"><line x1="{LEFT}" x2="{WIDTH - RIGHT}" '
                 f'y1="{ty:.1f}" y2="{ty:.1f}" stroke="{THRESHOLD_COLOUR}" stroke-width="1.5" stroke-dasharray="6 4"/>'
                 f'<text x="{WIDTH - RIGHT - 4}" y="{ty - 5:.1f}" text-anchor="end" fill="{THRESHOLD_COLOUR}" '
                 f'font-size="12">threshold {esc(pct(r.threshold))}</text></g>')
    for level, m in enumerate(on_chart):
        parts.append(_marker(m, x(_ts(m.time)), level))
    for offset, m in enumerate(ahead):
        parts.append(_offchart(m, offset))
    for i, s in enumerate(r.series):
        # Earlier series are drawn wider, so records with identical shares still all show.
        width = min(8.0, 2.0 + 1.5 * (len(r.series) - 1 - i))
        parts.append(_series(s, PALETTE[i % len(PALETTE)], x, y, width))
    svg = (f'<svg id="chart-{index}" class="share-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
           f'font-family="system-ui, DejaVu Sans, sans-serif" '
           f'aria-label="share of resolvers on the new answer over time">'
           f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>{"".join(parts)}</svg>')
    return f'<figure class="chart">{svg}{_legend(r, on_chart, ahead)}</figure>'


def _scale(d0: float, d1: float, r0: float, r1: float):
    span = (d1 - d0) or 1.0
    return lambda v: r0 + (v - d0) * (r1 - r0) / span


def _grid(x, y, start: float, end: float) -> str:
    out = ['<g class="axes" font-size="11" fill="#555">']
    for level in (0.0, 0.25, 0.5, 0.75, 1.0):
        yy = y(level)
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e3e3e3"/>'
                   f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{int(level * 100)}%</text>')
    fmt = "%H:%M:%S" if end - start < 2 * 86400 else "%m-%d %H:%M"
    ticks = 5
    for i in range(ticks + 1):
        t = start + (end - start) * i / ticks
        xx = x(t)
        label = datetime.fromtimestamp(t, timezone.utc).strftime(fmt)
        out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM + 5}" stroke="#999"/>'
                   f'<text x="{xx:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">{label}</text>')
    day = datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%d")
    out.append(f'<text x="{LEFT}" y="{HEIGHT - 8}" fill="#777">UTC, from {day}</text>')
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM}" stroke="#999"/>'
               f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#999"/></g>')
    return "".join(out)


def _marker(m: Marker, xx: float, level: int) -> str:
    colour = MARKER_COLOUR.get(m.kind, "#444")
    anchor = "start" if xx < WIDTH - 200 else "end"
    dx = 4 if anchor == "start" else -4
    return (f'<g class="marker" data-marker="{esc(m.kind)}" data-time="{esc(m.time)}" data-passed="{str(m.passed).lower()}">'
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="{colour}" stroke-width="1.5" '
            f'stroke-dasharray="{"2 3" if m.kind != "change" else "none"}"/>'
            f'<text x="{xx + dx:.1f}" y="{TOP + 6 + 14 * level:.1f}" text-anchor="{anchor}" fill="{colour}" font-size="11">'
            f'{esc(m.label)}</text><title>{esc(m.label)} {esc(m.time)}</title></g>')


def _offchart(m: Marker, offset: int) -> str:
    colour = MARKER_COLOUR.get(m.kind, "#444")
    yy = TOP + 14 * (offset + 3)
    return (f'<g class="marker offchart" data-marker="{esc(m.kind)}" data-time="{esc(m.time)}" data-passed="false" '
            f'data-offchart="true"><text x="{WIDTH - RIGHT}" y="{yy}" text-anchor="end" fill="{colour}" font-size="11">'
            f'{esc(m.label)} {esc(m.time)} &#8594;</text></g>')


def _series(s: Series, colour: str, x, y, width: float = 2.5) -> str:
    """A polyline per run of answered rounds (a round nobody answered is a gap) and a dot per round.

    A week of 30-second rounds is 20,000 points per record: runs of equal shares are
    thinned to their ends (the line is the same), and dots are only drawn for up to
    ``MAX_DOTS`` drawn points, so the page stays small enough to mail.
    """
    runs: list[list[Point]] = [[]]
    for p in s.points:
        if p.share is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append(p)
    runs = [_thin(run) for run in runs if run]
    drawn = [p for run in runs for p in run]
    lines = "".join(
        f'<polyline fill="none" stroke="{colour}" stroke-width="{width:g}" stroke-linejoin="round" '
        f'points="{" ".join(f"{x(_ts(p.time)):.1f},{y(p.share):.1f}" for p in run)}"/>'
        for run in runs if len(run) > 1
    )
    dots = "" if len(drawn) > MAX_DOTS else "".join(
        f'<circle class="point" cx="{x(_ts(p.time)):.1f}" cy="{y(p.share):.1f}" r="{width / 2 + 2:.1f}" fill="{colour}" '
        f'data-round="{p.round}" data-share="{p.share:.4f}"><title>{esc(s.label)} round {p.round} '
        f'{esc(p.time)}: {p.new} of {p.answering} new ({esc(pct(p.share))})</title></circle>'
        for p in drawn
    )
    last = s.points[-1].share
    return (f'<g class="series" data-record="{esc(s.label)}" data-points="{len(s.points)}" '
            f'data-last-share="{"" if last is None else f"{last:.4f}"}" data-colour="{colour}">{lines}{dots}</g>')


def _thin(run: list[Point]) -> list[Point]:
    """Drop the inner points of every stretch of equal shares; the drawn line does not change."""
    if len(run) <= MAX_DOTS:
        return run
    kept = [run[0]]
    for prev, p, nxt in zip(run, run[1:], run[2:]):
        if not (p.share == prev.share == nxt.share):
            kept.append(p)
    kept.append(run[-1])
    return kept


def _legend(r: ZoneReport, on_chart: Iterable[Marker], ahead: Iterable[Marker]) -> str:
    items = [f'<li data-record="{esc(s.label)}"><span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>'
             f'{esc(s.label)}</li>' for i, s in enumerate(r.series)]
    items.append(f'<li style="color:{THRESHOLD_COLOUR}"><span class="swatch dashed"></span>threshold {esc(pct(r.threshold))}</li>')
    for m in list(on_chart) + list(ahead):
        colour = MARKER_COLOUR.get(m.kind, "#444")
        items.append(f'<li style="color:{colour}"><span class="swatch dashed"></span>{esc(m.label)} <time>{esc(m.time)}</time></li>')
    return f'<ul class="legend">{"".join(items)}</ul>'


# --------------------------------------------------------------------------- timeline and table


def timeline_list(r: ZoneReport, index: int) -> str:
    if not r.timeline:
        return f'<p class="empty" id="timeline-{index}">Nothing journalled yet.</p>'
    items = []
    for e in r.timeline:
        rnd = f' data-round="{e.round}"' if e.round is not None else ""
        items.append(f'<li class="entry kind-{esc(e.kind)} status-{esc(e.status)}" data-kind="{esc(e.kind)}" '
                     f'data-status="{esc(e.status)}" data-time="{esc(e.time or "")}"{rnd}>'
                     f'<time>{esc(e.time or "?")}</time><span class="title">{esc(e.title)}</span>'
                     f'<span class="detail">{esc(e.detail)}</span></li>')
    return f'<ol class="timeline" id="timeline-{index}">{"".join(items)}</ol>'


def resolver_table(rows: Sequence[ResolverRow], index: int) -> str:
    if not rows:
        return f'<p class="empty" id="resolvers-{index}">No resolver has been asked yet.</p>'
    body = []
    for row in rows:
        auth = row.group == "authoritative"
        notes = []
        if auth:
            notes.append('<span class="badge auth">authoritative</span>')
        if row.stale:
            notes.append('<span class="badge stale">stale</span>')
        if row.detail:
            notes.append(esc(row.detail))
        body.append(
            f'<tr class="{"authoritative " if auth else ""}{"stale " if row.stale else ""}state-row-{esc(row.state)}" '
            f'data-resolver="{esc(row.resolver)}" data-address="{esc(row.address)}" data-record="{esc(row.record)}" '
            f'data-state="{esc(row.state)}" data-stale="{str(row.stale).lower()}" data-group="{esc(row.group)}">'
            f'<td>{esc(row.resolver)}</td><td class="addr">{esc(row.address)}</td><td>{esc(row.operator)}</td>'
            f'<td>{esc(row.country)}</td><td>{esc(row.record)}</td>'
            f'<td><span class="state state-{esc(row.state)}">{esc(row.state)}</span></td>'
            f'<td class="ttl">{esc("-" if row.ttl is None else row.ttl)}</td>'
            f'<td class="time">{esc(row.first_new or "-")}</td><td>{" ".join(notes)}</td></tr>'
        )
    head = "".join(f"<th>{h}</th>" for h in ("Resolver", "Address", "Operator", "Country", "Record", "State",
                                               "Last TTL", "First seen new", "Notes"))
    return (f'<table class="resolvers" id="resolvers-{index}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')
