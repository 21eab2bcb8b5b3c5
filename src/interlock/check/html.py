"""The scorecard as one self-contained, printable HTML page.

A grid of checklist items (rows, each with its OWASP mappings) by
integration (columns); every cell says its verdict in words (PASS, FAIL,
EVIDENCE, WAIVED, N/A) as well as in colour, so the page reads the same in
greyscale print and to a screen reader (WCAG 2.2 SC 1.4.1, use of colour). A
legend explains the words; each finding's reason, evidence, place and fix
follow, per integration. As in :mod:`interlock.privacy.ropa_html`, every
value is escaped with :func:`html.escape` (``quote=True``: values also land
in attributes), markup comes only from this module, and the page has no
script and no external resource, under a Content-Security-Policy that allows
none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Final

from interlock.check.items import ITEMS, Item
from interlock.check.render import (
    CATALOGUE,
    Verdict,
    catalogue,
    integrations,
    ordered,
    summarise,
    verdict,
)
from interlock.check.results import Finding, Scorecard

__all__ = ["LABELS", "to_html"]

LABELS: Final[dict[Verdict, tuple[str, str]]] = {
    "fail": ("FAIL", "fails, and no valid waiver covers it"),
    "needs_evidence": (
        "EVIDENCE",
        "needs evidence Interlock cannot see: the manual steps are below",
    ),
    "waived": ("WAIVED", "fails, accepted by a waiver (reason, owner and expiry below)"),
    "pass": ("PASS", "passes"),
    "not_applicable": ("N/A", "does not apply to this integration"),
    "not_checked": ("\N{EM DASH}", "not evaluated in this run"),
}
"""Each verdict's label (the text in the cell) and its meaning (the legend)."""

# Dark text on light fills: every pair has a contrast ratio above 7:1. Cells
# keep their fill in print (print-color-adjust), and their words without it.
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;
color:#111;line-height:1.4;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;table-layout:fixed;margin:.5rem 0 1rem}
th,td{border:1px solid #999;padding:.3rem .5rem;text-align:left;vertical-align:top}
thead th,tfoot th,.kv th{background:#eee}
.grid th[scope=row]{width:34%}
.grid td{text-align:center;font-weight:bold;vertical-align:middle}
.grid td a{color:inherit;text-decoration:none}
.legend{width:auto}.legend td:first-child{text-align:center;font-weight:bold;width:7rem}
.kv th{width:22%}
.map{display:block;font-weight:normal;font-size:.8em;color:#333}
code{font-size:.85em;word-break:break-all}
.v-fail{background:#f8d0d0;color:#5c0000}
.v-needs_evidence{background:#fbe7b0;color:#4a3200}
.v-waived{background:#dcdcf5;color:#1c1c5a}
.v-pass{background:#d3efd6;color:#0b3d12}
.v-not_applicable,.v-not_checked{background:#ececec;color:#333}
h4 .v{padding:0 .4rem;border:1px solid #999}
h4{margin:.5rem 0 .2rem}
.grid tfoot td{font-weight:normal}
ul{margin:0;padding-left:1.2rem}
section,article{break-inside:avoid-page}
article{margin-bottom:1rem}
@media print{body{margin:0;max-width:none}a{color:inherit;text-decoration:none}
*{print-color-adjust:exact;-webkit-print-color-adjust:exact}}
"""


def _e(text: str) -> str:
    return escape(text, quote=True)


def _name(integration: str | None) -> str:
    return "(deployment)" if integration is None else integration


def _mapping(item: Item) -> str:
    ids = [f"ASVS {r}" for r in item.asvs] + list(item.api_top10)
    return " \N{MIDDLE DOT} ".join(ids) or "no OWASP entry"


_Cells = dict[tuple[str | None, str], list[tuple[str, Finding]]]


def _cell(found: Sequence[tuple[str, Finding]]) -> str:
    shown = verdict(f for _, f in found)
    label, meaning = LABELS[shown]
    # The cell links to its first finding with the verdict it shows.
    anchor = next((a for a, f in found if verdict((f,)) == shown), None)
    text = _e(label) if anchor is None else f'<a href="#{_e(anchor)}">{_e(label)}</a>'
    return f'<td class="v-{shown}" title="{_e(meaning)}">{text}</td>'


def _grid(scorecard: Scorecard, items: Sequence[Item], cells: _Cells) -> str:
    columns = integrations(scorecard)
    head = "".join(f'<th scope="col">{_e(_name(c))}</th>' for c in columns)
    rows = [
        f'<tr><th scope="row">{_e(item.title)} <small>({_e(item.severity)})</small>'
        f'<span class="map">{_e(_mapping(item))}</span></th>'
        + "".join(_cell(cells.get((column, item.id), [])) for column in columns)
        + "</tr>"
        for item in items
    ]
    counts = summarise(scorecard, items)["integrations"]
    foot = "".join(
        f"<td>{sum(c['failed'].values())} failing, {c['needs_evidence']} need evidence, "
        f"{c['waived']} waived</td>"
        for c in counts
    )
    return (
        '<table class="grid"><thead><tr><th scope="col">item (severity), OWASP mappings</th>'
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
        f'<tfoot><tr><th scope="row">summary</th>{foot}</tr></tfoot></table>'
    )


def _legend() -> str:
    rows = "".join(
        f'<tr><td class="v-{v}">{_e(label)}</td><td>{_e(meaning)}</td></tr>'
        for v, (label, meaning) in LABELS.items()
    )
    return f'<table class="legend"><tr><th>cell</th><th>meaning</th></tr>{rows}</table>'


def _finding(finding: Finding, item: Item, anchor: str) -> str:
    shown = verdict((finding,))
    label = LABELS[shown][0]
    rows = [("reason", _e(finding.reason))]
    if finding.evidence:
        listed = "".join(f"<li>{_e(e)}</li>" for e in finding.evidence)
        rows.append(("evidence", f"<ul>{listed}</ul>"))
    if finding.location is not None:
        at = finding.location
        rows.append(("where", f"<code>{_e(f'{at.file}:{at.line}:{at.column}')}</code>"))
    if finding.fix:
        rows.append(("fix", _e(finding.fix)))
    if finding.waiver is not None:
        w = finding.waiver
        rows.append(("waiver", _e(f"{w.reason} (owner {w.owner}, expires {w.expires})")))
    rows.append(("from", "live probe" if finding.live else "configuration"))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return (
        f'<article id="{_e(anchor)}"><h4><span class="v v-{shown}">{_e(label)}</span> '
        f"{_e(item.title)}</h4>"
        f'<table class="kv">{body}</table></article>'
    )


def _findings(scorecard: Scorecard, items: Sequence[Item], cells: _Cells) -> str:
    by_id = {i.id: i for i in items}
    sections = []
    for column in integrations(scorecard):
        articles = "".join(
            _finding(f, by_id[item.id], anchor)
            for item in items
            for anchor, f in cells.get((column, item.id), [])
        )
        sections.append(f"<section><h3>{_e(_name(column))}</h3>{articles}</section>")
    return "\n".join(sections)


def _headline(scorecard: Scorecard, items: Sequence[Item]) -> str:
    total = summarise(scorecard, items)["total"]
    failed = total["failed"]
    mode = "configuration and live probes" if scorecard.live else "configuration only"
    return (
        f"<p>Generated {_e(scorecard.generated.isoformat())} from "
        f"<code>{_e(scorecard.manifest)}</code> ({mode}): "
        f"{sum(failed.values())} failing (high {failed['high']}, medium {failed['medium']}, "
        f"low {failed['low']}), {total['needs_evidence']} needing evidence, "
        f"{total['waived']} waived, {total['pass']} passing.</p>"
    )


def to_html(scorecard: Scorecard, *, items: Iterable[Item] = CATALOGUE) -> str:
    """The scorecard as a standalone HTML document, every value escaped."""
    # The checklist always; other items (integration types') where a finding names them.
    named = {f.item for f in scorecard.findings}
    known = tuple(i for i in catalogue(scorecard, items) if i in ITEMS or i.id in named)
    cells: _Cells = {}
    for n, f in enumerate(ordered(scorecard, known), start=1):
        cells.setdefault((f.integration, f.item), []).append((f"finding-{n}", f))
    title = "Interlock security checklist scorecard"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1>{_headline(scorecard, known)}"
        f"<h2>Legend</h2>{_legend()}"
        f"<h2>Scorecard</h2>{_grid(scorecard, known, cells)}"
        f"<h2>Findings</h2>\n{_findings(scorecard, known, cells)}\n</body></html>\n"
    )
