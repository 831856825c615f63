"""The live view: one line per round off a terminal; on one, a panel that fits the screen.

Layout tests render real round documents (built the way ``cutover.monitor`` builds them)
at 80 and 160 columns and check that no line, without its colour escapes, is wider than
the terminal. Redraw tests feed the view's output through ``pyte`` (a VT100 emulator), so
"erases exactly what it drew" is checked on a screen, not on escape strings.
"""

from __future__ import annotations

import io
import os
import signal
from datetime import datetime, timedelta, timezone
from typing import Any

import pyte
import pytest

from cutover.liveview import STOP_HINT, LiveView, Panel, render_round_line
from cutover.terminal import cells, visible
from cutover.observe.types import Answer, Round, Target
from cutover.records import normalise_values
from cutover.resolvers import Resolver
from tests.observations import round_doc
from tests.test_geography import MAIL as PMAIL, PROBLEM, T0 as PT0, WWW as PWWW, probe_round

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
ZONE = "example.com."
UPDATE = Target(("www.example.com.", "A"), ("203.0.113.10",), ("198.51.100.10",), 300)
LONG = Target(("a-very-long-host-name-that-an-operator-did-not-choose.eu-west-1.internal.example.com.", "AAAA"),
              ("2001:db8::10",), ("2001:db8::20",), 300)
MX = Target(("example.com.", "MX"), normalise_values("MX", ["10 mail.example.com."]),
            normalise_values("MX", ["10 mail.old-host.net."]), 3600)
NS = Target(("example.com.", "NS"), ("ns1.new-host.net.",), ("ns1.old-host.net.",), 86400, recursive=False)
AUTH = Resolver("192.0.2.53", name="ns1", group="authoritative")


def resolvers(n: int) -> list[Resolver]:
    return [Resolver(f"192.0.2.{i + 10}", name=f"resolver-{i}-of-a-public-list", group="public") for i in range(n)]


def ans(resolver: Resolver, target: Target, state: str, ttl: int | None = 300) -> Answer:
    return Answer(resolver, target.key, state, ttl, {"new": target.new, "old": target.old}.get(state, ()))


def sample_doc(*, retire: bool = False, zone: str | None = None) -> dict[str, Any]:
    """One record, four resolvers (one old, one timing out): round 7, half an hour in."""
    rs = resolvers(4)
    answers = (ans(rs[0], UPDATE, "new", 250), ans(rs[1], UPDATE, "old", 3600), ans(rs[2], UPDATE, "timeout", None),
               ans(rs[3], UPDATE, "new", 100), ans(AUTH, UPDATE, "new", 300))
    rnd = Round(7, T0 + timedelta(minutes=30), answers)
    now = rnd.time if not retire else T0 + timedelta(days=2)
    doc = round_doc(rnd, [UPDATE], change=T0, now=now, threshold=0.5 if retire else 1.0, period=86400)
    return dict(doc, zone=zone) if zone else doc


def busy_doc(n_resolvers: int = 30, n_records: int = 4) -> dict[str, Any]:
    """Everything at once: long names, many resolvers, an NS set asked only of the
    authoritative servers, notes and long reasons."""
    rs = resolvers(n_resolvers)
    extra = [Target((f"host-{i}.example.com.", "A"), ("203.0.113.10",), ("198.51.100.10",), 300) for i in range(n_records)]
    targets = [UPDATE, LONG, MX, NS, *extra]
    states = ("new", "old", "other", "timeout", "filtered", "servfail")
    answers = [ans(r, t, states[(i + j) % len(states)]) for i, r in enumerate(rs) for j, t in enumerate(targets) if t.recursive]
    answers += [ans(AUTH, t, "new") for t in targets]
    doc = round_doc(Round(12, T0 + timedelta(minutes=5), tuple(answers)), targets, change=T0, period=86400)
    doc["zone"] = ZONE
    verdict = doc["verdict"]
    verdict["notes"] = ["the old host still serves the zone and may teach resolvers the old delegation " * 3]
    for cond in verdict["conditions"]:
        if cond["name"] == "left_behind":
            cond.update(met=False, at=None, reason="3 record set(s) still point at the old server: " + "; ".join(
                f"legacy-{i}.example.com. A 198.51.100.10" for i in range(12)))
    return doc


class FakeTTY(io.StringIO):
    """A terminal as far as the view can tell; its size comes from the view's ``size``."""

    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def draw(doc: dict[str, Any], columns: int, rows: int = 40, **kw: Any) -> tuple[LiveView, FakeTTY]:
    out = FakeTTY()
    view = LiveView(out, size=lambda: (columns, rows), interval=30.0,
                    clock=lambda: (T0 + timedelta(minutes=30, seconds=5)).timestamp(), **kw)
    view.update(doc)
    return view, out


def on_a_tty(text: str) -> str:
    """What reaches the screen: the terminal driver turns each newline into CR LF."""
    return text.replace("\n", "\r\n")


def screen_of(text: str, columns: int, rows: int = 40) -> list[str]:
    screen = pyte.Screen(columns, rows)
    pyte.Stream(screen).feed(on_a_tty(text))
    return [line.rstrip() for line in screen.display]


def frame_lines(out: FakeTTY) -> list[str]:
    """The lines of the last frame written (each ends in erase-below), without escapes."""
    last = visible(out.getvalue().split("\x1b[J")[-2]).lstrip("\r")
    return last.split("\n")[:-1]


# --------------------------------------------------------------------------- off a terminal


def test_round_line_is_one_line_with_counts_and_verdict():
    line = render_round_line(sample_doc())
    assert "\n" not in line
    assert "round 7" in line and "www.example.com. A 2/3 new (66.7%)" in line and "old 1" in line and "error 1" in line
    assert "not yet" in line and "propagation" in line
    assert "retire: yes" in render_round_line(sample_doc(retire=True))


def test_on_a_pipe_one_line_per_round_and_sleep_just_pauses():
    out, paused = io.StringIO(), []
    view = LiveView(out, interval=30.0, pause=paused.append)
    view.update(sample_doc())
    view.update(sample_doc())
    view.sleep(12.5)
    view.close("stopped")
    assert out.getvalue() == 2 * (render_round_line(sample_doc()) + "\n")
    assert paused == [12.5]


# --------------------------------------------------------------------------- layout


@pytest.mark.parametrize("columns", [80, 160, 100, 60, 40])
@pytest.mark.parametrize("grid", [False, True])
def test_no_line_is_wider_than_the_terminal(columns, grid):
    _, out = draw(busy_doc(), columns, grid=grid, color=True)
    text = out.getvalue()
    lines = [visible(line) for line in text.split("\n")]
    assert max(cells(line) for line in lines) <= columns - 1  # the last column stays free: nothing wraps
    assert len(text.split("\n")) - 1 <= 39  # and the frame leaves a row for the cursor
    assert sum("cutover watch - round 12" in line for line in lines) == 1
    assert "\x1b[32m" in text  # coloured, and the colour does not count
    screen = screen_of(text, columns)
    assert sum("round 12" in row for row in screen) == 1
    assert all(row[columns - 1:].strip() == "" for row in screen)


def test_compact_layout_under_100_columns_and_wide_above():
    _, narrow = draw(busy_doc(), 80)
    _, wide = draw(busy_doc(), 160)
    header_80 = next(line for line in frame_lines(narrow) if line.startswith("  record"))
    header_160 = next(line for line in frame_lines(wide) if line.startswith("  record"))
    assert "oth" in header_80.split() and "auth" in header_80.split() and "authoritative" not in header_80
    assert "other" in header_160.split() and "authoritative" in header_160.split() and "toward 100%" in header_160
    assert any(line.startswith("  ok   authoritative servers all") for line in frame_lines(wide))
    assert any(line.startswith("  ok   authoritative   all") for line in frame_lines(narrow))


def test_wide_panel_has_the_full_bar_and_the_grid_marks_stale_answers():
    _, out = draw(sample_doc(), 160, grid=True, color=False)
    rows = frame_lines(out)
    assert any(line.startswith("  www.example.com.  A ") and "66.7%  [################........]" in line for line in rows)
    assert any(line.startswith("  resolver-1-of-a-public-list") and line.endswith("O!") for line in rows)
    assert any(line.startswith("  N new  O old") for line in rows)


def test_names_are_relative_to_the_zone_and_long_ones_end_in_an_ellipsis():
    _, out = draw(busy_doc(), 80)
    rows = frame_lines(out)
    assert any(line.startswith("  www ") for line in rows) and any(line.startswith("  @ ") for line in rows)
    long_row = next(line for line in rows if line.startswith("  a-very-long"))
    assert "…" in long_row and "AAAA" in long_row
    _, wide = draw(busy_doc(), 160)
    assert any(LONG.name[:-len(ZONE) - 1] in line for line in frame_lines(wide))  # room for it at 160


def test_a_record_asked_only_of_the_authoritative_servers_shows_no_counts():
    for columns in (160, 80):
        _, out = draw(busy_doc(), columns)
        rows = frame_lines(out)
        ns_row = next(line for line in rows if line.startswith("  @ ") and " NS " in line)
        assert ns_row.split()[2:5] == ["-", "-", "-"] and ns_row.endswith("all new")
        assert "  - : asked only of the authoritative servers, never of resolvers" in rows
    _, wide = draw(busy_doc(), 160)
    assert "authoritative only" in next(line for line in frame_lines(wide) if " NS " in line)  # where the bar would be


def test_conditions_notes_and_verdict_are_shown_folded_and_cut():
    _, out = draw(busy_doc(), 80)
    rows = frame_lines(out)
    left = [i for i, line in enumerate(rows) if "left behind" in line]
    assert left and rows[left[0]].lstrip().startswith("wait")
    assert rows[left[0] + 1].startswith(" " * 20) and rows[left[0] + 1].endswith("…")  # a second line, then cut
    assert any(line.startswith("  note: the old host still serves") for line in rows)
    assert any(line.startswith("  verdict: keep the old server running - waiting for propagation") for line in rows)
    assert any("holds at 2024-05-02T12:00:00Z (23h29m left)" in line for line in rows)  # counts down live


def test_the_verdict_names_what_is_switched_off():
    doc = sample_doc(retire=True)
    doc["verdict"]["retiring"] = ["198.51.100.10"]
    _, out = draw(doc, 80, color=False)
    assert "  verdict: 198.51.100.10 can be switched off" in frame_lines(out)
    assert "the verdict is reached: no more rounds" in out.getvalue()
    assert STOP_HINT not in out.getvalue()


def test_a_short_terminal_hides_rows_and_says_so_but_keeps_the_verdict():
    _, out = draw(busy_doc(n_records=40), 80, rows=24, grid=True)
    rows = frame_lines(out)
    assert len(rows) <= 23
    assert any("more records (a taller terminal shows them)" in line for line in rows)
    assert any(line.startswith("  verdict:") for line in rows)
    assert STOP_HINT in rows[-1]


def test_the_grid_drops_record_columns_that_do_not_fit():
    _, out = draw(busy_doc(n_resolvers=3, n_records=12), 80, grid=True)
    assert "more record(s) not shown (a wider terminal shows them)" in out.getvalue()
    rows = frame_lines(out)
    header = rows.index(next(line for line in rows if line.startswith("  resolver ")))
    assert rows[header + 1].startswith("  resolver-0…blic-list") and "O" in rows[header + 1].split()[1:]


def test_footer_counts_down_and_says_how_to_stop():
    _, out = draw(sample_doc(), 80)
    assert frame_lines(out)[-1] == f"next round in 25s - {STOP_HINT}"  # round at 12:30:00, every 30s, now 12:30:05
    _, narrow = draw(sample_doc(), 40)
    assert frame_lines(narrow)[-2:] == ["next round in 25s", "Ctrl-C stops; the journal keeps every…"]
    once = FakeTTY()
    LiveView(once, size=lambda: (80, 40), interval=None).update(sample_doc())  # --once: no round follows
    assert STOP_HINT not in once.getvalue() and "next round" not in once.getvalue()


def test_several_zones_the_footer_counts_those_ready_to_retire():
    view, out = draw(sample_doc(zone="a.example."), 100)
    view.update(sample_doc(retire=True, zone="b.example."))
    view.update(sample_doc(zone="c.example."))
    assert frame_lines(out)[-1] == f"1 of 3 zones ready to retire - next round in 25s - {STOP_HINT}"
    view.close("stopped")
    assert frame_lines(out)[-1] == "1 of 3 zones ready to retire - stopped"


def test_colour_only_when_asked():
    _, out = draw(sample_doc(retire=True), 80, color=True)
    assert "\x1b[32m" in out.getvalue() and "can be switched off" in out.getvalue()
    _, plain = draw(sample_doc(retire=True), 80, color=False)
    assert "\x1b[3" not in plain.getvalue() and "\x1b[1m" not in plain.getvalue()


def test_compact_below_100_columns():
    assert Panel(99).compact and not Panel(100).compact


# --------------------------------------------------------------------------- redrawing


def test_each_redraw_goes_back_exactly_the_rows_it_drew():
    view, out = draw(busy_doc(), 80, grid=True)
    first = out.getvalue()
    assert first.startswith("\x1b[1mcutover watch")  # nothing to erase yet
    view.update(sample_doc(zone=ZONE))  # a shorter panel replaces a taller one
    second = out.getvalue()[len(first):]
    assert second.startswith(f"\x1b[{first.count(chr(10))}A\r")
    screen = screen_of("narration above\n" + out.getvalue(), 80, rows=60)  # room for both on this screen
    assert screen[0] == "narration above" and sum("cutover watch - round" in row for row in screen) == 1
    assert not any("host-3" in row or "resolver-29" in row for row in screen)  # nothing of the taller panel is left


def test_several_zones_keep_one_panel_each():
    view, out = draw(sample_doc(zone="a.example."), 160)
    view.update(sample_doc(zone="b.example."))
    screen = screen_of(out.getvalue(), 160)
    assert [row for row in screen if "cutover watch - round" in row] == [
        "cutover watch - round 7 at 2024-05-01T12:30:00Z - a.example",
        "cutover watch - round 7 at 2024-05-01T12:30:00Z - b.example"]
    assert sum(STOP_HINT in row for row in screen) == 1


def test_a_narrower_terminal_gets_a_clean_screen():
    size = [160, 40]
    out = FakeTTY()
    view = LiveView(out, size=lambda: tuple(size), interval=30.0, grid=True)
    view.update(busy_doc())
    screen = pyte.Screen(160, 40)
    stream = pyte.Stream(screen)
    stream.feed(on_a_tty(out.getvalue()))
    mark = len(out.getvalue())
    size[0] = 80
    screen.resize(40, 80)
    view.tick()
    assert out.getvalue()[mark:].startswith("\x1b[H\x1b[2J")
    stream.feed(on_a_tty(out.getvalue()[mark:]))
    assert sum("round 12" in row for row in screen.display) == 1
    assert all(row[79:].strip() == "" for row in screen.display)


def test_sleep_redraws_the_countdown_every_second_and_at_once_on_a_resize():
    clock = [(T0 + timedelta(minutes=30, seconds=20)).timestamp()]
    paused: list[float] = []

    def pause(seconds: float) -> None:
        paused.append(seconds)
        clock[0] += seconds
        if len(paused) == 1:
            os.kill(os.getpid(), signal.SIGWINCH)  # handled before the next line runs

    out = FakeTTY()
    before = signal.getsignal(signal.SIGWINCH)
    view = LiveView(out, size=lambda: (80, 40), interval=30.0, pause=pause, clock=lambda: clock[0])
    view.update(sample_doc())
    assert f"next round in 10s - {STOP_HINT}" in out.getvalue()
    view.sleep(3.0)
    assert sum(paused) == pytest.approx(3.0) and max(paused) <= 0.25
    frames = out.getvalue().split("\x1b[J")[:-1]
    assert len(frames) == 1 + 1 + 2  # the round, the resize (after 0.25s), a second after each redraw
    assert "next round in 8s" in frames[-1]  # 2.25s after a round due in 10s
    view.close("stopped; the journal keeps every round")
    assert frame_lines(out)[-1] == "stopped; the journal keeps every round"
    assert signal.getsignal(signal.SIGWINCH) == before


def test_close_without_ending_leaves_the_panel_and_draws_nothing_more():
    view, out = draw(sample_doc(), 80)
    drawn = out.getvalue()
    view.close()
    view.tick()
    assert out.getvalue() == drawn


# --------------------------------------------------------------------------- probe answers


def probe_draw(doc: dict[str, Any], columns: int, rows: int = 40, seconds: float = 30.0, **kw: Any) -> tuple[LiveView, FakeTTY]:
    """The view of a probe round (``tests.test_geography.probe_round``), ``seconds`` after it."""
    doc.setdefault("zone", "example.com.")
    out = FakeTTY()
    view = LiveView(out, size=lambda: (columns, rows), interval=600.0,
                    clock=lambda: (PT0 + timedelta(seconds=seconds)).timestamp(), **kw)
    view.update(doc)
    return view, out


def test_probes_by_country_with_the_old_ones_first_and_their_age():
    doc = probe_round(problems=[PROBLEM], in_flight=1)
    _, out = probe_draw(doc, 160)
    rows = frame_lines(out)
    line = next(r for r in rows if r.startswith("  probes "))
    # 12s, 42s and 250s old at the round, seen 30s later; DE (old 3) and BR (old 1) first
    assert line == ("  probes 22/26 new err 1 · DE 7/10 old 3 · BR 0/1 old 1 filt 1 · JP 10/10 · US 4/4 · FR 1/1 err 1"
                    " · 42s-4m40s old · 1 in flight")
    assert f"  ! {PROBLEM}" in rows
    assert rows.index(line) == 3  # right under the records table


def test_probe_ages_keep_counting_between_rounds():
    view, out = probe_draw(probe_round(ages=(12.0,)), 120)
    assert " · 42s old" in next(r for r in frame_lines(out) if r.startswith("  probes "))
    view.tick(PT0 + timedelta(minutes=2))
    assert " · 2m12s old" in next(r for r in frame_lines(out) if r.startswith("  probes "))


@pytest.mark.parametrize("columns", [40, 60, 80, 100, 160])
@pytest.mark.parametrize("grid", [False, True])
def test_probe_lines_fit_the_width(columns, grid):
    doc = probe_round(targets=(PWWW, PMAIL), problems=[PROBLEM + " " + "x" * 200] * 3, in_flight=2)
    _, out = probe_draw(doc, columns, grid=grid, color=True)
    text = out.getvalue()
    assert max(cells(visible(line)) for line in text.split("\n")) <= columns - 1
    assert len(text.split("\n")) - 1 <= 39
    rows = frame_lines(out)
    assert any(r.startswith("  probes ") for r in rows)
    assert any(r.startswith("  ! globalping: POST") for r in rows)
    if columns >= 60:  # the per-record lines name the country still answering old data first
        www = next(r for r in rows if r.startswith("    www A  "))
        assert www.startswith("    www A  22/26 old 4 err 1 filt 1 · DE 7/10 old 3")
        assert www.endswith((" more", " · …")) or columns >= 100  # says that countries are hidden


def test_narrow_terminal_says_how_many_countries_it_hides():
    _, out = probe_draw(probe_round(), 60)
    line = next(r for r in frame_lines(out) if r.startswith("  probes "))
    assert line == "  probes 22/26 new err 1 · DE 7/10 old 3 · +4 more · 42s-4…"  # the age gives way first
    _, wider = probe_draw(probe_round(), 80)
    assert "  probes 22/26 new err 1 · DE 7/10 old 3 · +4 more · 42s-4m40s old" in frame_lines(wider)


def test_several_records_get_a_line_each_and_problems_are_counted():
    doc = probe_round(targets=(PWWW, PMAIL), problems=[PROBLEM, "ripe-atlas: probes offline", "third"])
    _, out = probe_draw(doc, 120, color=True)
    rows = frame_lines(out)
    assert "  probes 44/52 new err 2 · 42s-4m40s old" in rows
    assert any(r.startswith("    www A  22/26 old 4") for r in rows) and any(r.startswith("    mail A  22/26") for r in rows)
    assert "  ! ripe-atlas: probes offline" in rows
    assert "  ! 1 more probe service problems (cutover status lists them)" in rows
    assert f"\x1b[33m  ! {PROBLEM}" in out.getvalue()  # a warning, in yellow


def test_no_probe_answers_yet_and_no_probes_at_all():
    doc = probe_round([], in_flight=1)
    _, out = probe_draw(doc, 100)
    assert "  probes no answers yet · 1 in flight" in frame_lines(out)
    doc.pop("probes")
    _, plain = probe_draw(doc, 100)
    assert not any("probes" in r for r in frame_lines(plain))
    _, old = draw(sample_doc(), 100)  # a round stored before probes: its answers lack the keys
    assert not any("probes" in r for r in frame_lines(old))


def test_a_round_without_probe_results_shows_the_last_ones_seen():
    view, out = probe_draw(probe_round(ages=(12.0,)), 120)
    later = dict(probe_round([], at=PT0 + timedelta(seconds=30), number=8), zone="example.com.")
    view.update(later, PT0 + timedelta(seconds=60))
    line = next(r for r in frame_lines(out) if r.startswith("  probes "))
    assert line.startswith("  probes 22/26 new err 1 · DE 7/10 old 3") and line.endswith(" · 1m12s old, from round 7")


def test_grid_lists_probes_with_their_network_and_strips_control_characters():
    doc = probe_round([("JP", "new"), ("JP", "new"), ("DE", "old")])
    for a in doc["records"][0]["answers"][2:]:
        a["vantage"]["probe"] = ""  # as Globalping gives them: the two Tokyo probes share a label
    doc["records"][0]["answers"][-1]["vantage"]["network"] = "Deutsche\x1b[2J Telekom"
    _, out = probe_draw(doc, 120, grid=True)
    rows = frame_lines(out)
    assert any(r.startswith("  globalping JP Tokyo AS2516 KDDI ") and r.endswith(" N") for r in rows)
    assert any(r.startswith("  globalping JP Tokyo AS2516 KDDI #2 ") for r in rows)  # two probes, two rows
    assert any(r.startswith("  globalping DE Berlin AS3320 Deutsche[2J Telekom") and r.endswith(" O") for r in rows)
    assert "\x1b[2J" not in out.getvalue()


def test_the_log_line_carries_the_probes():
    line = render_round_line(probe_round(problems=[PROBLEM]))
    assert "| probes 22/26 new; not new in DE 3, BR 1; 12s-4m10s old; 1 probe service problem(s) |" in line
    assert "probes" not in render_round_line(sample_doc())
