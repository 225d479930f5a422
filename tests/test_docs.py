"""The documentation holds together: the README stays a guide, every link lands, and the exit
codes it lists are the ones the command returns (``contracts.ExitCode``)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from customer_import.contracts import ExitCode

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_LIMIT = 20_000
"""Bytes, as ``wc -c README.md`` counts them: reference detail belongs in docs/."""

_FENCE = re.compile(r"^(`{3,}|~{3,}).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+).+?\1", re.DOTALL)
# [text](target) or [text](target "title"); the text may hold one level of brackets.
_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def documents() -> list[Path]:
    """Every markdown page whose links are checked."""
    pages = [README, ROOT / "bench" / "README.md", ROOT / "bench" / "RESULTS.md"]
    pages += sorted(DOCS.glob("*.md"))
    return [page for page in pages if page.exists()]


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans: links there are not links."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def links(page: Path) -> list[str]:
    return _LINK.findall(prose(page.read_text(encoding="utf-8")))


def relative_links(page: Path) -> list[str]:
    return [target for target in links(page) if not _SCHEME.match(target)]


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces
    to hyphens, a repeated heading numbered -1, -2..."""
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    seen: Counter[str] = Counter()
    found = set()
    for heading in _HEADING.findall(text):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return found


def exit_code_rows() -> list[list[str]]:
    """The cells of the table rows under the README's "## Exit codes" heading."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Exit codes[ \t]*$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, 'README.md has no "## Exit codes" section'
    rows = [line.strip() for line in match.group(1).splitlines() if line.strip().startswith("|")]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    return cells[2:]  # after the header and its --- line


def test_readme_stays_under_its_size_limit() -> None:
    size = len(README.read_bytes())
    assert size < README_LIMIT, f"README.md is {size} bytes: move reference detail to docs/"


@pytest.mark.parametrize("page", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_that_exists(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for target in relative_links(README)
        if target.partition("#")[0]
    }
    unlinked = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


def test_the_readme_exit_code_table_lists_exactly_the_exit_codes() -> None:
    rows = exit_code_rows()
    assert rows, "the Exit codes section has no table rows"
    firsts = [row[0] for row in rows]
    assert all(first.isdigit() for first in firsts), f"rows that are not an exit code: {firsts}"
    assert sorted(int(first) for first in firsts) == sorted(code.value for code in ExitCode)


def test_the_link_checker_sees_links_and_skips_code() -> None:
    """A checker that finds nothing passes everything: it must find links in prose only."""
    sample = "see [a](docs/a.md) and [b `c`](x.md#y)\n```\n[no](code.md)\n```\n`[no](span.md)`"
    assert _LINK.findall(prose(sample)) == ["docs/a.md", "x.md#y"]
    assert relative_links(README), "README.md has no relative links at all"
