"""The report's world view: probe answers by continent, country and network.

Probe networks (Globalping, RIPE Atlas) answer through resolvers all over the world, so
the report shows *where* the old data is still served: a schematic map (one tile per
continent, placed roughly as on a world map), a grid of countries per continent, each
cell coloured by its answers (all new, all old, a mix, or nobody answering) with its
counts, and a table per network. Like the rest of the page it is drawn with inline SVG
and CSS only: no map tiles, no script, no font, nothing fetched. Every value that came
from a probe service (network and city names, problems) goes through ``esc``.

The rows are ``report.CountryRow`` / ``NetworkRow``: each probe's latest answer about
every record, aged to the last round (``ZoneReport.probes_at``).
"""

from __future__ import annotations

from typing import Sequence
from urllib.parse import urlsplit

from cutover import geography as geo
from cutover.report import CountryRow, NetworkRow, ZoneReport
from cutover.report_html import esc, pct
from cutover.times import duration

#: Fill and edge of a map tile or country cell, per ``geography.TONES``.
TONE_COLOUR = {
    "new": ("#d7f0de", "#1b7f3b"), "old": ("#f9d6d4", "#b3261e"), "mixed": ("#ffe8c2", "#b36b00"),
    "other": ("#eadcf5", "#6a3d9a"), "error": ("#ececec", "#8a8a8a"),
}
TONE_LABEL = {"new": "all new", "old": "none new (old)", "mixed": "mixed new and old", "other": "other data only",
              "error": "no answer (errors, blocked)"}
#: The stacked bar in a cell: what each state's share of the answers looks like.
STATE_COLOUR = (("new", "#1b7f3b"), ("old", "#b3261e"), ("other", "#6a3d9a"), ("error", "#8a8a8a"), ("filtered", "#5b7083"))
#: A continent's tile on the schematic map (x, y, width, height in SVG units), west to east.
TILES = {
    "NA": (10, 10, 190, 105), "SA": (105, 125, 135, 105), "EU": (255, 10, 135, 90), "AF": (255, 110, 135, 115),
    "AS": (405, 10, 225, 130), "OC": (500, 150, 130, 80), "AN": (200, 240, 260, 28),
}
MAP_WIDTH, MAP_HEIGHT = 640, 276

CSS = """
.world .map svg { width:100%; max-width:640px; height:auto; display:block; }
.continents { display:grid; grid-template-columns:repeat(auto-fill, minmax(280px, 1fr)); gap:12px; margin:12px 0; }
.continent { border:1px solid var(--line); border-radius:6px; padding:8px 10px; }
.continent h4 { margin:0 0 6px; font-size:15px; }
.continent h4 .counts { font-weight:normal; color:var(--muted); font-size:13px; margin-left:6px; }
.countries { display:flex; flex-wrap:wrap; gap:6px; }
.country { width:84px; border:2px solid; border-radius:5px; padding:3px 5px; font-size:12px; line-height:1.3; }
.country .code { font-weight:700; font-size:14px; }
.country .n { float:right; font-family:ui-monospace, "DejaVu Sans Mono", monospace; }
.country svg { display:block; width:100%; height:6px; margin:2px 0; }
.country .sub { color:#333; font-size:11px; min-height:1.3em; overflow-wrap:anywhere; }
""" + "".join(f".tone-{t} {{ background:{fill}; border-color:{edge}; }}\n" for t, (fill, edge) in TONE_COLOUR.items()) + """
table.networks td.num { text-align:right; font-family:ui-monospace, "DejaVu Sans Mono", monospace; }
ul.problems { margin:6px 0; padding-left:20px; }
ul.problems li { overflow-wrap:anywhere; }
ul.problems li.current { color:var(--fail); }
"""


def world_section(r: ZoneReport, index: int) -> str:
    """The probes' part of a zone's section; "" when no probe service was ever asked."""
    if not (r.countries or r.probe_services or r.probe_problems):
        return ""
    youngest = min((c.youngest for c in r.countries if c.youngest is not None), default=None)
    oldest = max((c.oldest for c in r.countries if c.oldest is not None), default=None)
    ages = geo.age_words(youngest, oldest)
    answers = sum(c.new + c.old + c.other + c.error + c.filtered for c in r.countries)
    about = "No probe answer has arrived yet."
    if r.countries:
        about = (f"Each probe's latest answer about each record: {answers} answers from {len(r.countries)} countries"
                 + (f", measured {esc(ages)} before the last round (<time>{esc(r.probes_at)}</time>)" if ages else "")
                 + ". A probe asks through its own resolver, where its users are.")
    return (f'<h3>Probes around the world</h3>\n<div class="world" id="world-{index}" data-probes-at="{esc(r.probes_at or "")}">'
            f'<p class="meta">{about}</p>{world_map(r.countries, index)}{_legend()}{country_grid(r.countries, index)}'
            f'{network_table(r.networks, index)}{services_block(r, index)}</div>')


# --------------------------------------------------------------------------- map and grid


def world_map(countries: Sequence[CountryRow], index: int) -> str:
    """One tile per continent, placed as on a world map, coloured by its answers."""
    if not countries:
        return ""
    tiles = []
    for code, (x, y, w, h) in TILES.items():
        rows = [c for c in countries if c.continent == code]
        t = _tally(rows)
        tone = t.tone if rows else "none"
        fill, edge = TONE_COLOUR.get(tone, ("#ffffff", "#cfcfcf"))
        counts = f"{t.new}/{t.answering} new" if rows else "no probes"
        behind = " ".join(f"{word} {n}" for word, n in (("old", t.old), ("other", t.other), ("failed", t.error + t.filtered)) if n)
        small = h < 40
        text_y = y + (h / 2 + 5 if small else 24)
        label = (f'<text x="{x + 10}" y="{text_y:.0f}" font-size="{12 if small else 14}" font-weight="600">'
                 f'{esc(geo.continent_name(code))}{"" if not small else f"  {esc(counts)}"}</text>')
        if not small:
            label += (f'<text x="{x + 10}" y="{y + 44}" font-size="13">{esc(counts)}</text>'
                      f'<text x="{x + 10}" y="{y + 62}" font-size="12" fill="{edge}">{esc(behind)}</text>'
                      f'<text x="{x + 10}" y="{y + h - 10}" font-size="11" fill="#555">{len(rows) or ""}'
                      f'{" countries" if len(rows) > 1 else " country" if rows else ""}</text>')
        tiles.append(f'<g class="tile" data-continent="{code}" data-tone="{tone}" data-new="{t.new}" data-old="{t.old}">'
                     f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="8" fill="{fill}" stroke="{edge}" stroke-width="2"/>'
                     f'{label}<title>{esc(geo.continent_name(code))}: {esc(counts)} {esc(behind)}</title></g>')
    return (f'<figure class="map" style="margin:0"><svg id="world-map-{index}" viewBox="0 0 {MAP_WIDTH} {MAP_HEIGHT}" '
            f'role="img" font-family="system-ui, DejaVu Sans, sans-serif" aria-label="probe answers by continent">'
            f'{"".join(tiles)}</svg></figure>')


def country_grid(countries: Sequence[CountryRow], index: int) -> str:
    """Per continent, a cell per country: its colour, new of answering, what holds it back."""
    if not countries:
        return ""
    continents: dict[str, list[CountryRow]] = {}
    for c in countries:
        continents.setdefault(c.continent, []).append(c)
    blocks = []
    for code, rows in continents.items():
        t = _tally(rows)
        cells = "".join(_country_cell(c) for c in rows)
        blocks.append(f'<div class="continent" data-continent="{esc(code)}"><h4>{esc(rows[0].continent_name)}'
                      f'<span class="counts">{t.new}/{t.answering} new{esc(_extra(t))}</span></h4>'
                      f'<div class="countries">{cells}</div></div>')
    return f'<div class="continents" id="countries-{index}">{"".join(blocks)}</div>'


def _country_cell(c: CountryRow) -> str:
    t = _row_tally(c)
    title = (f"{c.country} ({c.continent_name}): {t.new} new, {t.old} old, {t.other} other, {t.error} failed, "
             f"{t.filtered} filtered; {TONE_LABEL[c.tone]}; networks: {', '.join(c.networks) or '-'}; "
             f"cities: {', '.join(c.cities) or '-'}; measured {geo.age_words(c.youngest, c.oldest) or '?'} before the last round")
    data = " ".join(f'data-{k}="{getattr(c, k)}"' for k in ("new", "old", "other", "error", "filtered", "answering"))
    return (f'<div class="country tone-{esc(c.tone)}" data-country="{esc(c.country)}" data-continent="{esc(c.continent)}" '
            f'data-tone="{esc(c.tone)}" {data} title="{esc(title)}"><span class="code">{esc(c.country)}</span>'
            f'<span class="n">{t.new}/{t.answering}</span>{_bar(t)}<div class="sub">{esc(_extra(t).strip())}</div></div>')


def _bar(t: geo.Tally) -> str:
    """The answers' split as a stacked bar (inline SVG, 100 units wide)."""
    total, x, parts = t.asked or 1, 0.0, []
    for state, colour in STATE_COLOUR:
        width = 100 * getattr(t, state) / total
        if width:
            parts.append(f'<rect x="{x:.2f}" y="0" width="{width:.2f}" height="6" fill="{colour}"/>')
            x += width
    return f'<svg viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true">{"".join(parts)}</svg>'


def _legend() -> str:
    items = [f'<li data-tone="{t}"><span class="swatch" style="height:12px;background:{TONE_COLOUR[t][0]};'
             f'border:2px solid {TONE_COLOUR[t][1]}"></span>{esc(TONE_LABEL[t])}</li>' for t in geo.TONES]
    return f'<ul class="legend">{"".join(items)}</ul>'


# --------------------------------------------------------------------------- networks and services


def network_table(networks: Sequence[NetworkRow], index: int) -> str:
    if not networks:
        return ""
    body = []
    for row in sorted(networks, key=lambda n: (n.old + n.other == 0, -(n.old + n.other), -(n.answering + n.error + n.filtered))):
        ages = geo.age_words(row.youngest, row.oldest) or "-"
        nums = "".join(f'<td class="num">{getattr(row, k)}</td>' for k in ("new", "old", "other", "error", "filtered"))
        body.append(f'<tr class="tone-row-{esc(row.tone)}" data-network="{esc(row.network)}" data-tone="{esc(row.tone)}" '
                    f'data-old="{row.old}" data-new="{row.new}"><td>{esc(row.network)}</td><td>{esc(row.name)}</td>'
                    f'<td>{esc(" ".join(row.countries))}</td>{nums}<td class="num">{esc(pct(row.share))}</td>'
                    f'<td><span class="state state-{esc(_state_class(row.tone))}">{esc(row.tone)}</span></td>'
                    f'<td class="time">{esc(ages)}</td></tr>')
    head = "".join(f"<th>{h}</th>" for h in ("Network", "Name", "Countries", "New", "Old", "Other", "Failed", "Filtered",
                                               "Share new", "Answers", "Measured before"))
    return (f'<h4>By network</h4><table class="resolvers networks" id="networks-{index}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def services_block(r: ZoneReport, index: int) -> str:
    """What each probe service did in the last round, and the problems the rounds reported."""
    items = []
    for s in r.probe_services:
        host = urlsplit(s.url).netloc or s.url  # the host, not a link: the page refers to nothing outside itself
        every = f"every {duration(s.every)}" if s.every else ""
        finished = f"last results <time>{esc(s.last_finished)}</time>" if s.last_finished else "no results yet"
        words = ", ".join(esc(w) for w in (every, f"{s.in_flight} in flight" if s.in_flight else "",
                                          f"{s.answers} answers in the last round") if w)
        items.append(f'<li data-service="{esc(s.service)}"><strong>{esc(s.service)}</strong> ({esc(host)}): {words}; {finished}</li>')
    out = f'<h4>Probe services</h4><ul class="services" id="probe-services-{index}">{"".join(items)}</ul>' if items else ""
    if r.probe_problems:
        shown = len(r.probe_problems)
        more = (f' <span class="meta">({r.probe_problems_total - shown} older ones not shown)</span>'
                if r.probe_problems_total > shown else "")
        problems = "".join(
            f'<li class="{"current" if p.current else "past"}" data-service="{esc(p.service)}" data-current="{str(p.current).lower()}">'
            f'{esc(p.text)} <span class="meta">({p.rounds} round{"s" if p.rounds != 1 else ""}, <time>{esc(p.first)}</time>'
            f'{f" to <time>{esc(p.last)}</time>" if p.last != p.first else ""}'
            f'{"; still in the last round" if p.current else ""})</span></li>'
            for p in r.probe_problems)
        out += (f'<h4>Probe service problems{more}</h4><p class="meta">A failing probe service is reported here and never '
                f'stops the watch.</p><ul class="problems" id="probe-problems-{index}">{problems}</ul>')
    return out


# --------------------------------------------------------------------------- helpers


def _row_tally(row: CountryRow | NetworkRow) -> geo.Tally:
    return geo.Tally(row.new, row.old, row.other, row.error, row.filtered, row.youngest, row.oldest)


def _tally(rows: Sequence[CountryRow]) -> geo.Tally:
    return geo.Tally(new=sum(r.new for r in rows), old=sum(r.old for r in rows), other=sum(r.other for r in rows),
                     error=sum(r.error for r in rows), filtered=sum(r.filtered for r in rows))


def _extra(t: geo.Tally) -> str:
    """`` old 3 failed 1``: what is not new, for after the counts."""
    return "".join(f" {word} {n}" for word, n in (("old", t.old), ("other", t.other), ("failed", t.error),
                                                  ("filtered", t.filtered)) if n)


def _state_class(tone: str) -> str:
    """The page's state badge colours: mixed reads as ``other`` (amber), no answer as grey."""
    return {"mixed": "other", "error": "error", "other": "filtered"}.get(tone, tone)
