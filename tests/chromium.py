"""Headless Chromium for the tests of our HTML pages (the Art. 30 register, the scorecard).

Chromium runs with ``--dump-dom``, ``--screenshot`` or ``--print-to-pdf`` only
(no browser driver). It is a Debian package (``make chromium`` installs it as
root); without it the tests skip, or fail under ``INTERLOCK_REQUIRE_SERVICES=1``.
Tests that use it start a process: mark them ``processes``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from interlock.testing.services import require_env

__all__ = ["LAYOUT_PROBE", "find_chromium", "layout", "probed", "run_chromium"]

# Measures the layout once the page has loaded and writes it into the DOM, where
# --dump-dom shows it: the page's own width, and the right edge of its widest box.
LAYOUT_PROBE = """<script>
addEventListener("load", () => {
  let right = 0;
  for (const el of document.querySelectorAll("body *")) {
    right = Math.max(right, el.getBoundingClientRect().right);
  }
  const d = document.documentElement;
  document.body.dataset.layout = [d.scrollWidth, innerWidth, Math.ceil(right)].join(",");
});
</script>"""


def find_chromium() -> str:
    """The chromium binary; skip without it (fail when services are required)."""
    found = shutil.which("chromium")
    if found is None:
        reason = "chromium is not installed (make chromium, or apt-get install chromium)"
        if require_env():
            pytest.fail(f"required service missing: {reason}")
        pytest.skip(reason)
    return found


def run_chromium(chromium: str, profile: Path, *args: str) -> str:
    """Run headless chromium with ``args`` and a fresh profile; its standard output."""
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    done = subprocess.run(  # noqa: S603  (chromium, fixed arguments)
        command, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def probed(page: str) -> str:
    """A copy of ``page`` with the layout probe (the shipped page's CSP forbids script)."""
    stripped = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    return stripped.replace("</body>", LAYOUT_PROBE + "</body>")


def layout(dom: str) -> tuple[int, int, int]:
    """(document width, window width, right edge of the widest box) from a probed DOM."""
    found = re.search(r'data-layout="(\d+),(\d+),(\d+)"', dom)
    assert found is not None, dom[-2000:]
    scroll, viewport, right = (int(n) for n in found.groups())
    return scroll, viewport, right
