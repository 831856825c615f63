"""The command line's own behaviour: help that tells the truth, arguments read as meant,
and one JSON document even when a command fails as a whole."""

from __future__ import annotations

import json

import pytest

from cutover import cli


def help_of(*command: str) -> str:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[command[0]].format_help()  # type: ignore[union-attr]


def test_help_says_where_state_is_not_used_and_what_force_overrides():
    assert "beside the plan" not in help_of("export") and "writes no state" in help_of("export")
    assert "beside the plan" not in help_of("demo") and "keep the demo's journal here" in help_of("demo")
    rollback = help_of("rollback")
    assert "override one guard (drift; repeatable)" in rollback and "TTL" not in rollback
    assert "left-behind" in help_of("apply") and "--wait" in help_of("apply")


def test_force_before_a_plan_means_every_guard():
    assert cli._force_before_plans(["apply", "--force", "plan.yaml", "--yes"]) == ["apply", "--force=all", "plan.yaml", "--yes"]
    assert cli._force_before_plans(["apply", "--force", "ttl", "p.yaml"]) == ["apply", "--force", "ttl", "p.yaml"]
    assert cli._force_before_plans(["apply", "p.yaml", "--force"]) == ["apply", "p.yaml", "--force"]
    assert cli.forced_guards(None) is False and cli.forced_guards(["all"]) is True
    assert cli.forced_guards(["ttl", "safety"]) == frozenset({"ttl", "safety"})


def test_bad_arguments_still_give_one_json_document(capsys):
    assert cli.main(["apply", "plan.yaml", "--force", "tll", "--format", "json"]) == 2
    (line,) = capsys.readouterr().out.splitlines()
    doc = json.loads(line)
    assert doc["schema"] == cli.SCHEMA_VERSION and doc["command"] == "apply" and doc["exit_code"] == 2
    assert "invalid choice: 'tll'" in doc["error"]


def test_a_bad_plan_lists_every_problem_in_the_json_document(tmp_path, capsys):
    plan = tmp_path / "plan.yaml"
    plan.write_text("zone: example.com\nprovider: {type: manual}\nrecords: [{name: www, type: A, to: [300.1.1.1]}]\n"
                    "retire: {min_answering: 0}\n")
    assert cli.main(["diff", str(plan), "--format", "json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["problems"]) == 2
    assert any("records[0].to[0]: '300.1.1.1' is not a valid IPv4 address" in p for p in doc["problems"])
    assert any("retire.min_answering" in p for p in doc["problems"])


@pytest.mark.parametrize("command", ["apply", "rollback"])
def test_without_a_terminal_a_change_needs_yes(tmp_path, capsys, command):
    plan = tmp_path / "plan.yaml"
    plan.write_text("zone: example.com\nprovider: {type: manual, nameservers: ['127.0.0.1:9']}\n"
                    "records: [{name: www, type: A, to: [192.0.2.1]}]\n")
    assert cli.main([command, str(plan), "--format", "json"]) == 2
    assert "pass --yes when not running on a terminal" in json.loads(capsys.readouterr().out)["error"]


def test_a_very_long_word_after_force_is_not_probed_as_a_file():
    long = "x" * 5000
    assert cli._force_before_plans(["apply", "--force", long]) == ["apply", "--force", long]


def test_all_confirms_this_zone_and_every_zone_after_it(monkeypatch, write_plan):
    import argparse
    import io

    from cutover import plan as planmod
    from cutover.diff import ZoneDiff

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers, shown = Tty("n\nall\n"), Tty()
    monkeypatch.setattr("sys.stdin", answers)
    monkeypatch.setattr("sys.stderr", shown)
    plan = planmod.load(write_plan("""
        version: 1
        zone: example.com
        provider: {type: rfc2136, server: 127.0.0.1}
        records: [{name: www, type: A, to: [203.0.113.10]}]
    """))
    ask = cli._confirmer(argparse.Namespace(yes=False), cli.Output(False), "apply", False)
    zone = ZoneDiff(plan, {}, ())
    assert [ask(zone), ask(zone), ask(zone), ask(zone)] == [False, True, True, True]
    assert shown.getvalue().count("[y/N/all]") == 2  # asked twice; after "all", only shown
