"""cutover.planfile: reading one plan file as strict, safe YAML, with every failure located.

Devices, FIFOs, sockets and oversized files are in tests/test_plan_mistakes.py (through
``plan.load``); here ``read_yaml`` is called directly: what it returns, where it puts a
syntax problem, and which YAML it refuses (a duplicate key, a tag that would build an
object, several documents) or must accept (anchors and merge keys).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cutover import planfile
from cutover.errors import PlanError, Problem


def write(tmp_path: Path, text: str | bytes, name: str = "plan.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def refused(path: Path) -> list[Problem]:
    with pytest.raises(PlanError) as info:
        planfile.read_yaml(path)
    assert info.value.source == str(path)
    return info.value.problems


# --------------------------------------------------------------------------- what is read


def test_a_plan_is_read_as_plain_data(tmp_path):
    path = write(tmp_path, "zone: example.com\nrecords:\n  - {name: www, ttl: 300, to: [192.0.2.1]}\n")
    assert planfile.read_yaml(path) == {"zone": "example.com", "records": [{"name": "www", "ttl": 300, "to": ["192.0.2.1"]}]}


def test_an_empty_file_is_nothing_and_a_bom_is_skipped(tmp_path):
    assert planfile.read_yaml(write(tmp_path, "")) is None
    assert planfile.read_yaml(write(tmp_path, b"\xef\xbb\xbfzone: example.com\n", "bom.yaml")) == {"zone": "example.com"}


def test_the_same_key_in_sibling_mappings_is_not_a_duplicate(tmp_path):
    text = "records:\n  - {name: www, type: A}\n  - {name: mail, type: A}\n"
    assert planfile.read_yaml(write(tmp_path, text))["records"][1] == {"name": "mail", "type": "A"}


def test_anchors_and_aliases_are_read(tmp_path):
    text = "records:\n  - {name: www, to: &web [192.0.2.1]}\n  - {name: shop, to: *web}\n"
    assert planfile.read_yaml(write(tmp_path, text))["records"][1]["to"] == ["192.0.2.1"]


def test_merge_keys_are_read_as_yaml_defines_them(tmp_path):
    """``<<: *web`` shares a record's settings, as ``yaml.safe_load`` reads it. The strict
    loader's duplicate check constructs every key node itself, the merge key included, and
    SafeLoader has no constructor for the merge tag, so the plan is refused today with
    "invalid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:merge'"."""
    text = ("records:\n"
            "  - &web {name: www, type: A, ttl: 300, to: [192.0.2.1]}\n"
            "  - {<<: *web, name: shop}\n")
    assert planfile.read_yaml(write(tmp_path, text))["records"][1] == {"name": "shop", "type": "A", "ttl": 300,
                                                                        "to": ["192.0.2.1"]}


# --------------------------------------------------------------------------- what is refused


def test_a_duplicate_key_is_located_at_its_second_occurrence(tmp_path):
    text = "zone: example.com\nrecords:\n  - name: www\n    to: [192.0.2.1]\n    to: [192.0.2.2]\n"
    assert refused(write(tmp_path, text)) == [Problem("line 5, column 5", "invalid YAML: duplicate key 'to'")]


def test_duplicate_numeric_keys_are_refused_too(tmp_path):
    assert refused(write(tmp_path, "1: a\n1: b\n")) == [Problem("line 2, column 1", "invalid YAML: duplicate key 1")]


def test_a_tag_that_would_build_an_object_is_refused(tmp_path):
    (problem,) = refused(write(tmp_path, "zone: !!python/object/apply:os.system [touch /tmp/owned]\n"))
    assert problem.path == "line 1, column 7"
    assert problem.message.startswith("invalid YAML: could not determine a constructor for the tag")


def test_a_second_document_is_refused(tmp_path):
    assert refused(write(tmp_path, "zone: a.example\n---\nzone: b.example\n")) == [
        Problem("line 2, column 1", "invalid YAML: but found another document")]


def test_an_undefined_alias_is_refused_where_it_is_used(tmp_path):
    assert refused(write(tmp_path, "a: &x 1\nb: *y\n")) == [Problem("line 2, column 4", "invalid YAML: found undefined alias 'y'")]


def test_an_unclosed_list_is_refused_at_the_end(tmp_path):
    assert refused(write(tmp_path, "to: [192.0.2.1, 192.0.2.2\n")) == [
        Problem("line 2, column 1", "invalid YAML: expected ',' or ']', but got '<stream end>'")]


def test_tabs_get_a_hint(tmp_path):
    (problem,) = refused(write(tmp_path, "records:\n\t- {name: www}\n"))
    assert problem.message.endswith("(YAML indentation must use spaces, not tabs)")


def test_bytes_that_are_not_utf8_are_located(tmp_path):
    assert refused(write(tmp_path, b"zone: ex\xffample.com\n")) == [Problem("", "is not UTF-8 text (byte 8)")]


def test_a_missing_file_and_a_directory_are_named(tmp_path):
    assert refused(tmp_path / "nope.yaml") == [Problem("", "no such file")]
    assert refused(tmp_path) == [Problem("", "is a directory, not a plan file")]


# --------------------------------------------------------------------------- reading at most the limit


class Trickle:
    """A file that hands out ``chunk`` bytes per read, for ``total`` bytes (None: forever)."""

    def __init__(self, chunk: int, total: int | None) -> None:
        self.chunk, self.left = chunk, total
        self.given = 0
        self.asks: list[tuple[int, int]] = []  # (bytes asked, bytes given before)

    def read(self, n: int) -> bytes:
        self.asks.append((n, self.given))
        size = min(n, self.chunk) if self.left is None else min(n, self.chunk, self.left)
        if self.left is not None:
            self.left -= size
        self.given += size
        return b"x" * size


def test_the_read_stops_at_the_limit_on_an_endless_file():
    f = Trickle(chunk=7, total=None)
    assert len(planfile._read_at_most(f, 100)) == 100
    assert all(n <= 100 - given for n, given in f.asks)  # never asks past the limit


def test_the_read_stops_at_the_end_of_a_short_file():
    assert planfile._read_at_most(Trickle(chunk=3, total=10), 100) == b"x" * 10
    assert planfile._read_at_most(io.BytesIO(b""), 100) == b""


def test_one_byte_over_the_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(planfile, "MAX_PLAN_BYTES", 16)
    assert planfile.read_yaml(write(tmp_path, "zone: example.c\n")) == {"zone": "example.c"}  # 16 bytes
    (problem,) = refused(write(tmp_path, "zone: example.co\n", "over.yaml"))
    assert problem.path == "" and problem.message.startswith("file is ")
