"""The Art. 30 register as one readable, printable HTML page.

jinja2 is not a dependency, so the page is built with :func:`html.escape` on
every value taken from the manifest (``quote=True``: values also land in
attributes); literal markup comes only from this module. The page is static:
no script, no external resource, a Content-Security-Policy that allows none.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from interlock.privacy.ropa_render import register_rows

if TYPE_CHECKING:
    from interlock.privacy.ropa import Record, Register

__all__ = ["to_html"]

# Long identifiers (manifest paths, e-mail addresses) wrap instead of widening
# the page; tables take the page's width, never more.
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;
color:#111;line-height:1.4;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;table-layout:fixed;margin:.5rem 0 1rem}
th,td{border:1px solid #999;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{width:28%;background:#eee}
code{font-size:.85em;word-break:break-all}
.special{color:#a00;font-weight:bold}
section{break-inside:avoid-page;margin-bottom:2rem}
@media print{body{margin:0;max-width:none}a{color:inherit}}
"""


def _e(text: str) -> str:
    return escape(text, quote=True)


def to_html(register: Register) -> str:
    """The register as a standalone HTML document, every manifest value escaped."""
    sections = "\n".join(_section(r) for r in register.records)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Record of processing activities (GDPR Art. 30)</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>Record of processing activities (GDPR Art. 30)</h1>"
        f"<p>Generated {_e(register.generated_at.isoformat())} from "
        f"<code>{_e(register.manifest)}</code>; {len(register.records)} processing "
        "activities.</p>\n"
        f"{sections}\n</body></html>\n"
    )


def _section(record: Record) -> str:
    flag = (
        ' <span class="special">special categories (Art. 9 / Art. 10)</span>'
        if record.special
        else ""
    )
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in register_rows(record))
    measures = "".join(
        f"<tr><td>{_e(m.description)}</td><td><code>{_e(m.configured_at)}</code></td></tr>"
        for m in record.measures
    )
    return (
        f'<section id="{_e(record.integration)}"><h2>{_e(record.integration)}{flag}</h2>'
        f"<table>{rows}</table>"
        "<h3>Technical and organisational measures (Art. 30(1)(g), Art. 32)</h3>"
        "<table><tr><th>measure</th><th>configured at</th></tr>"
        f"{measures}</table></section>"
    )
