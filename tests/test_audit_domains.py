"""Reading an audit's input: DOMAINS files (plain and CSV), --old/--new, --names."""

from __future__ import annotations

import pytest

from cutover.audit.domains import addresses, domain_name, read_domains, relative_names
from cutover.errors import UsageError


def test_plain_list_with_comments_blank_lines_and_duplicates(tmp_path):
    path = tmp_path / "domains.txt"
    path.write_text("# customers\n\nExample.COM\nshop.example.net.  # trailing comment\n  example.com\nbücher.example\n")
    listed = read_domains(path)
    assert [d.name for d in listed.domains] == ["example.com.", "shop.example.net.", "xn--bcher-kva.example."]
    assert [d.line for d in listed.domains] == [3, 4, 6]
    assert listed.duplicates == 1 and listed.columns == ()


def test_csv_with_a_domain_column_keeps_the_other_columns(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("\ufeffcustomer,Domain,email\nK1,example.com,a@example.com\n\nK2,example.org,\"b, c@example.org\"\n")
    listed = read_domains(path)
    assert [d.name for d in listed.domains] == ["example.com.", "example.org."]
    assert listed.columns == ("customer", "email")
    assert listed.domains[1].fields == (("customer", "K2"), ("email", "b, c@example.org"))
    assert listed.domains[1].line == 4


def test_a_single_column_csv_named_domain(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("domain\nexample.com\n")
    assert [d.name for d in read_domains(path).domains] == ["example.com."]


def test_csv_without_a_domain_column_names_the_header_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("# export\ncustomer,site\nK1,example.com\n")
    with pytest.raises(UsageError) as err:
        read_domains(path)
    assert str(err.value) == f"{path}:2: no domain column in the CSV header (found 'customer', 'site'; name one 'domain')"


def test_every_bad_line_is_named_with_file_and_line(tmp_path):
    path = tmp_path / "domains.txt"
    path.write_text("example.com\n192.0.2.1\nhttps://example.org/\nexa mple.com\nlocalhost\n-bad-.example\n")
    with pytest.raises(UsageError) as err:
        read_domains(path)
    lines = str(err.value).splitlines()
    assert lines == [
        f"{path}:2: '192.0.2.1' is an IP address, not a domain",
        f"{path}:3: 'https://example.org/' is not a domain name (expected e.g. example.com, not a URL or an address)",
        f"{path}:4: 'exa mple.com' is not a domain name (expected e.g. example.com, not a URL or an address)",
        f"{path}:5: 'localhost' is not a domain name (expected at least two labels, e.g. example.com)",
        f"{path}:6: '-bad-.example' is not a domain name (the label '-bad-' has characters a host name cannot have)",
    ]


def test_a_csv_row_without_the_domain_cell(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("customer,domain\nK1\n")
    with pytest.raises(UsageError, match=r"d.csv:2: the row has 1 cells, no 'domain' cell"):
        read_domains(path)


def test_many_problems_are_capped(tmp_path):
    path = tmp_path / "domains.txt"
    path.write_text("".join(f"bad domain {i}\n" for i in range(30)))
    with pytest.raises(UsageError) as err:
        read_domains(path)
    lines = str(err.value).splitlines()
    assert len(lines) == 21 and lines[-1] == f"{path}: ... and 10 more problems"


@pytest.mark.parametrize("content, message", [
    (b"", "no domains in the file"),
    (b"# only a comment\n", "no domains in the file"),
    (b"example.com\n\xff\xfe\n", ":2: not UTF-8 text (byte 0xff); save the file as UTF-8"),
])
def test_empty_and_undecodable_files(tmp_path, content, message):
    path = tmp_path / "domains.txt"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_domains(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(UsageError, match=r"nope.txt: cannot be read \(No such file or directory\)"):
        read_domains(tmp_path / "nope.txt")
    with pytest.raises(UsageError, match="is a directory"):
        read_domains(tmp_path)


def test_domain_name_rules():
    assert domain_name(" Example.Com. ") == "example.com."
    with pytest.raises(ValueError, match="at least two labels"):
        domain_name("com")
    with pytest.raises(ValueError, match="is not a domain name"):
        domain_name("a" * 64 + ".example")
    with pytest.raises(ValueError, match="an IP address"):
        domain_name("[2001:db8::1]")


def test_addresses_are_canonical_and_checked():
    assert addresses("198.51.100.10, 2001:DB8:0::10", "--old") == frozenset({"198.51.100.10", "2001:db8::10"})
    with pytest.raises(UsageError, match=r"--new: '300.1.1.1' is not an IP address"):
        addresses("300.1.1.1", "--new")
    with pytest.raises(UsageError, match="--old: give at least one IP address"):
        addresses(" , ", "--old")


def test_relative_names():
    assert relative_names(["shop,autodiscover", "www", "@", "Shop"]) == ("shop", "autodiscover")
    with pytest.raises(UsageError, match="is absolute"):
        relative_names(["shop.example.com."])
    with pytest.raises(UsageError, match="is not a name relative"):
        relative_names(["a b"])
