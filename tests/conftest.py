"""Shared helpers for unit tests: writing plan files, and a maintenance window on a fake provider."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from cutover import apply as applymod, plan as planmod
from cutover.journal import Journal
from tests.fakes import PLAN, ZONE, Clock, MemoryProvider


@pytest.fixture
def write_plan(tmp_path: Path):
    """Write a plan from YAML text (dedented) and return its path."""

    def write(text: str, name: str = "plan.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def env(write_plan, tmp_path):
    """(context, provider, journal, clock) for PLAN on ZONE, state in a temporary folder."""
    plan = planmod.load(write_plan(PLAN))
    provider = MemoryProvider(plan.zone, ZONE)
    journal = Journal(tmp_path / "state")
    clock = Clock()
    yield applymod.Context(plan, provider, journal, clock=clock), provider, journal, clock
    journal.close()
