"""The HTML Art. 30 register in headless Chromium: it renders, fits the page, names every flow.

Chromium runs with ``--dump-dom`` and ``--screenshot`` only (tests/chromium.py).
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from interlock.config.loader import load_manifest
from interlock.privacy.ropa import build_register
from interlock.privacy.ropa_html import to_html
from tests.chromium import find_chromium, layout, probed, run_chromium

pytestmark = pytest.mark.processes

EXAMPLE = Path(__file__).parents[2] / "examples" / "interlock.yaml"
NOW = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def chromium() -> str:
    """The chromium binary; skip without it (fail when services are required)."""
    return find_chromium()


def _page(tmp_path: Path) -> str:
    """The example's register, with a long unbroken word and markup in a purpose."""
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "      Weekly and monthly",
        "      <b>bold?</b> " + "x" * 300 + " Weekly and monthly",
        1,
    )
    manifest = tmp_path / "interlock.yaml"
    manifest.write_text(text, encoding="utf-8")
    register = build_register(
        load_manifest(manifest), source=str(manifest), kek_backend="file", now=NOW
    )
    return to_html(register)


@pytest.mark.parametrize("width", [1280, 800])
def test_the_page_fits_the_window_and_names_every_integration(
    chromium: str, tmp_path: Path, width: int
) -> None:
    """No horizontal overflow at desktop and A4-print widths; every integration present."""
    # The shipped page allows no script (its CSP); the probe is for this copy only.
    html = tmp_path / "ropa.html"
    html.write_text(probed(_page(tmp_path)), encoding="utf-8")
    dom = run_chromium(
        chromium, tmp_path / "profile", f"--window-size={width},2000", "--dump-dom", html.as_uri()
    )
    scroll, viewport, right = layout(dom)
    assert viewport == width
    assert scroll <= viewport, f"page is {scroll}px wide in a {viewport}px window"
    assert right <= viewport, f"an element ends at {right}px in a {viewport}px window"
    for name in load_manifest(EXAMPLE).integrations:
        assert f"<h2>{name}</h2>" in dom
    assert "&lt;b&gt;bold?&lt;/b&gt;" in dom


def test_the_shipped_page_renders_to_a_screenshot(chromium: str, tmp_path: Path) -> None:
    """The page as written (CSP and all) renders: a 1280x2000 PNG, integrations in its DOM."""
    html = tmp_path / "ropa.html"
    html.write_text(_page(tmp_path), encoding="utf-8")
    shot = tmp_path / "ropa.png"
    run_chromium(
        chromium,
        tmp_path / "profile",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        "--hide-scrollbars",
        html.as_uri(),
    )
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1280, 2000)
    assert shot.stat().st_size > 10_000  # not a blank page
    dom = run_chromium(chromium, tmp_path / "profile2", "--dump-dom", html.as_uri())
    for name in load_manifest(EXAMPLE).integrations:
        assert f'<section id="{name}">' in dom
