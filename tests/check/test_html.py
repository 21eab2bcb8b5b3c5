"""The HTML scorecard: words and colour in every cell, escaped values, no script; in Chromium.

The static tests read the page as written; the browser tests load it in headless
Chromium (tests/chromium.py), read the grid back from the rendered DOM, check
it fits desktop and A4 widths, and print it to PDF.
"""

from __future__ import annotations

import re
import struct
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from interlock.check.html import LABELS, to_html
from interlock.check.items import ITEMS, Item
from interlock.check.results import Finding, Scorecard
from tests.check.scorecards import FINDINGS, MANIFEST, NOW, scorecard
from tests.chromium import find_chromium, layout, probed, run_chromium


class _Grid(HTMLParser):
    """The scorecard grid as rows of cell texts (with each cell's class), header first."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, str]]] = []
        self._in_grid = False
        self._cell: list[str] | None = None
        self._class = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and ("class", "grid") in attrs:
            self._in_grid = True
        elif self._in_grid and tag == "tr":
            self.rows.append([])
        elif self._in_grid and tag in {"td", "th"}:
            self._cell = []
            self._class = dict(attrs).get("class") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_grid = False
        elif self._cell is not None and tag in {"td", "th"}:
            self.rows[-1].append((" ".join("".join(self._cell).split()), self._class))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _grid(page: str) -> dict[str, dict[str, tuple[str, str]]]:
    """{item title: {column: (cell text, class)}} from a page or a dumped DOM."""
    parser = _Grid()
    parser.feed(page)
    header, *body = parser.rows
    columns = [text for text, _ in header[1:]]
    grid = {}
    for row in body[:-1]:  # the last row is the summary
        title = next(i.title for i in ITEMS if row[0][0].startswith(i.title))
        grid[title] = dict(zip(columns, row[1:], strict=True))
    return grid


def _hostile() -> Scorecard:
    """The test scorecard with markup in evidence and fix too."""
    findings = (
        replace(FINDINGS[1], evidence=('"><img src=x onerror=alert(1)>',), fix="<i>fix</i>"),
        *FINDINGS[2:],
    )
    return replace(scorecard(), findings=findings)


def test_every_cell_says_its_verdict_in_words_and_colour() -> None:
    """Each cell: a label from the legend and the matching colour class; worst finding wins."""
    grid = _grid(to_html(scorecard()))
    assert set(grid) == {i.title for i in ITEMS}
    assert grid["TLS required"]["order-sync"] == ("FAIL", "v-fail")  # live fail over a pass
    assert grid["Authentication between systems"]["order-sync"] == ("PASS", "v-pass")
    assert grid["Rate limiting"]["analytics-feed"] == ("WAIVED", "v-waived")
    assert grid["Encryption at rest"]["(deployment)"] == ("EVIDENCE", "v-needs_evidence")
    assert grid["Data minimisation"]["analytics-feed"] == ("N/A", "v-not_applicable")
    assert grid["Input validation"]["order-sync"] == ("\N{EM DASH}", "v-not_checked")
    by_class = {f"v-{verdict}": label for verdict, (label, _) in LABELS.items()}
    for row in grid.values():
        for text, css in row.values():
            assert by_class[css] == text


def test_the_page_has_a_legend_mappings_reasons_and_fixes() -> None:
    """The legend explains every label; rows name their OWASP ids; findings follow."""
    page = to_html(scorecard())
    for label, meaning in LABELS.values():
        assert f">{label}</td><td>{meaning}</td>" in page
    assert "ASVS V12.1.1" in page
    assert "API10:2023" in page
    assert "client order-sync holds orders.write" in page
    assert "remove orders.write from the client&#x27;s roles" in page
    assert "batch export runs once a night from one address" in page
    assert "data-platform@example.com" in page
    assert "examples/interlock.yaml:31:7" in page


def test_every_value_is_escaped_and_the_page_has_no_script_or_outside_resource() -> None:
    """Markup in reasons, evidence and fixes shows as text; CSP allows nothing but inline style."""
    page = to_html(_hostile())
    assert "<script" not in page
    assert "<img" not in page
    assert "<i>fix" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "default-src 'none'; style-src 'unsafe-inline'" in page
    assert not re.search(r"(src|href)=\"(?!#)", page)  # only in-page links
    assert "http://" not in page
    assert "https://" not in page


@pytest.fixture(scope="module")
def chromium() -> str:
    """The chromium binary; skip without it (fail when services are required)."""
    return find_chromium()


@pytest.mark.processes
def test_chromium_renders_the_grid_and_runs_no_script(chromium: str, tmp_path: Path) -> None:
    """The shipped page (CSP and all) in Chromium: the grid reads back; markup stays text."""
    html = tmp_path / "scorecard.html"
    html.write_text(to_html(_hostile()), encoding="utf-8")
    dom = run_chromium(chromium, tmp_path / "profile", "--dump-dom", html.as_uri())
    grid = _grid(dom)
    assert grid["TLS required"]["order-sync"] == ("FAIL", "v-fail")
    assert grid["Rate limiting"]["analytics-feed"] == ("WAIVED", "v-waived")
    assert grid["Retention on queues and logs"]["analytics-feed"] == ("FAIL", "v-fail")
    assert "<script" not in dom
    assert "<img" not in dom
    assert "&lt;script&gt;alert" in dom


@pytest.mark.processes
@pytest.mark.parametrize("width", [1280, 800])
def test_the_page_fits_the_window(chromium: str, tmp_path: Path, width: int) -> None:
    """No horizontal overflow at desktop and A4-print widths."""
    html = tmp_path / "scorecard.html"
    # The shipped page allows no script (its CSP); the probe is for this copy only.
    html.write_text(probed(to_html(scorecard())), encoding="utf-8")
    dom = run_chromium(
        chromium, tmp_path / "profile", f"--window-size={width},2000", "--dump-dom", html.as_uri()
    )
    scroll, viewport, right = layout(dom)
    assert viewport == width
    assert scroll <= viewport, f"page is {scroll}px wide in a {viewport}px window"
    assert right <= viewport, f"an element ends at {right}px in a {viewport}px window"


@pytest.mark.processes
def test_the_page_prints_and_screenshots(chromium: str, tmp_path: Path) -> None:
    """Print to PDF gives pages; a screenshot is not blank."""
    html = tmp_path / "scorecard.html"
    html.write_text(to_html(scorecard()), encoding="utf-8")
    pdf = tmp_path / "scorecard.pdf"
    run_chromium(
        chromium,
        tmp_path / "profile",
        f"--print-to-pdf={pdf}",
        "--no-pdf-header-footer",
        html.as_uri(),
    )
    document = pdf.read_bytes()
    assert document.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b", document)) >= 2  # grid, then the findings
    shot = tmp_path / "scorecard.png"
    run_chromium(
        chromium,
        tmp_path / "profile2",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        "--hide-scrollbars",
        html.as_uri(),
    )
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1280, 2000)
    assert shot.stat().st_size > 10_000


def test_an_empty_scorecard_is_a_page_too() -> None:
    """No findings: the legend and an empty grid, no crash."""
    page = to_html(Scorecard(manifest=MANIFEST, generated=NOW, live=False))
    assert "configuration only" in page
    assert "0 failing" in page


def test_rows_for_other_items_appear_only_where_a_finding_names_them() -> None:
    """The 13 items always; an integration type's item when one of its findings is there."""
    named = Item("type.pigeon.ring_check", "Carrier pigeons ringed", "medium", "Rings.")
    unused = Item("type.pigeon.feed", "Carrier pigeons fed", "low", "Seed.")
    card = replace(
        scorecard(),
        findings=(*FINDINGS, Finding(named.id, "events", "needs_evidence", "no adapter yet")),
    )
    page = to_html(card, items=(*ITEMS, named, unused))
    parser = _Grid()
    parser.feed(page)
    titles = [row[0][0] for row in parser.rows[1:-1]]
    assert len(titles) == len(ITEMS) + 1
    assert titles[-1].startswith("Carrier pigeons ringed")
    assert "Carrier pigeons fed" not in page
    assert _grid_cell(page, "Carrier pigeons ringed", "events") == (
        "EVIDENCE",
        "v-needs_evidence",
    )


def _grid_cell(page: str, title: str, column: str) -> tuple[str, str]:
    parser = _Grid()
    parser.feed(page)
    header, *body = parser.rows
    columns = [text for text, _ in header[1:]]
    row = next(r for r in body if r[0][0].startswith(title))
    return row[1 + columns.index(column)]
