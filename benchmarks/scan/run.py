"""Precision and recall of ``interlock scan`` and its peers on secrets other projects label.

The data is fetched from PyPI when the benchmark runs and never stored here
(``labelled.py`` says what it is and how each label is derived): documents
GitGuardian's detection API judged in the recorded tests of ``ggshield`` and
``pygitguardian``, and bandit's own hardcoded-password example with the
lines its functional test expects. The three scanners read the same tree:

* Interlock: ``scan()`` (secret findings only);
* detect-secrets (Yelp, default plugins, ``scan --all-files``);
* bandit (``-r``, its hardcoded-password checks B105/B106/B107; Python only).

A labelled secret is found when a scanner reports any line it spans; a
reported line inside no label is a false positive. Per family, recall is over
that family's labels and precision over the files holding them; overall,
precision is over every file, clean ones included.

Reported through ``benchmarks.results.report`` (so ``make bench`` records each
as met or missed): ``scan-recall-vs-detect-secrets`` (target >= 1.0) and
``scan-precision`` (target >= 0.9) overall, and the same two per family as
``scan-recall-vs-detect-secrets[FAMILY]`` and ``scan-precision[FAMILY]``. A
family with no label in the fetched data gets no figure, only a printed note;
so does the precision of a family in whose files Interlock reported nothing
(no report, no precision: its recall figure shows the miss). A family neither
scanner finds anything of has recall ratio 0, missed.

Run: ``.venv/bin/python benchmarks/scan/run.py`` (``make bench-env`` installs
the peers). Exit status 2 without network: nothing is measured then.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.results import report
from benchmarks.scan.labelled import FAMILIES, Document, Label, fetch_labelled
from interlock.scan import Baseline, scan

BENCHMARK = "scan"
INTERLOCK = "interlock scan"
BANDIT_SECRET_TESTS = frozenset({"B105", "B106", "B107"})  # hardcoded password string/arg/default
BANDIT_EXPECTED = 16  # bandit's test_hardcoded_passwords: 16 low-severity findings
Found = set[tuple[str, int]]


@dataclass(frozen=True)
class Score:
    """Labels found and missed, reported lines outside every label."""

    tp: int
    fn: int
    fp: int

    @property
    def precision(self) -> float:
        """Share of reports that hit a labelled secret."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """Share of labelled secrets reported."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def score(labels: Iterable[Label], found: Found, paths: set[str], every: list[Label]) -> Score:
    """Score ``found`` against ``labels``; false positives: lines in ``paths`` in no label."""
    labels = list(labels)
    hit = [any((label.path, line) in found for line in label.lines) for label in labels]
    inside = {(label.path, line) for label in every for line in label.lines}
    stray = {(path, line) for path, line in found if path in paths and (path, line) not in inside}
    return Score(sum(hit), len(hit) - sum(hit), len(stray))


def interlock(root: Path) -> Found:
    """Interlock's secret findings."""
    return {(f.path, f.line) for f in scan(root, Baseline()).findings if f.kind == "secret"}


def detect_secrets(bin_dir: Path, root: Path) -> Found:
    """detect-secrets' findings (default plugins and filters)."""
    output = subprocess.run(
        [str(bin_dir / "detect-secrets"), "scan", "--all-files", "."],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        (Path(name).as_posix(), hit["line_number"])
        for name, hits in json.loads(output)["results"].items()
        for hit in hits
    }


def bandit(bin_dir: Path, root: Path) -> Found:
    """bandit's hardcoded-password findings."""
    completed = subprocess.run(
        [str(bin_dir / "bandit"), "-r", ".", "-f", "json", "-q"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,  # exit 1 when it finds something
    )
    return {
        (Path(r["filename"]).as_posix().removeprefix("./"), r["line_number"])
        for r in json.loads(completed.stdout)["results"]
        if r["test_id"] in BANDIT_SECRET_TESTS
    }


def write_tree(root: Path, documents: list[Document]) -> None:
    """The documents as files below ``root``."""
    for document in documents:
        path = root / document.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(document.text, encoding="utf-8")


def row(name: str, result: Score) -> str:
    """One result row."""
    return (
        f"  {name:<34} precision {result.precision:.3f}  recall {result.recall:.3f}  "
        f"(tp {result.tp}, fn {result.fn}, fp {result.fp})"
    )


def recall_ratio(ours: Score, theirs: Score) -> float:
    """Interlock's recall over detect-secrets'; only defined when detect-secrets found some."""
    if not theirs.recall:
        raise ValueError("no ratio to a recall of 0: report the difference instead")
    return ours.recall / theirs.recall


def report_scores(labels: list[Label], results: dict[str, Found], every_path: set[str]) -> None:
    """Print each family's rows and the overall ones; report the ratios overall and per family."""
    peer = next(name for name in results if name.startswith("detect-secrets"))
    present = {label.family for label in labels}
    for family in (*FAMILIES, *sorted(present - set(FAMILIES))):
        of_family = [label for label in labels if label.family == family]
        if not of_family:
            print(f"family {family}: no labelled secret in the data; no figure reported")
            continue
        paths = {label.path for label in of_family}
        scores = {name: score(of_family, found, paths, labels) for name, found in results.items()}
        print(f"family {family} ({len(of_family)} labelled):")
        for name, result in scores.items():
            print(row(name, result))
        ours, theirs = scores[INTERLOCK], scores[peer]
        counts = f"({ours.tp} and {theirs.tp} of {len(of_family)} labelled secrets)"
        if theirs.recall:
            report(
                BENCHMARK,
                f"scan-recall-vs-detect-secrets[{family}]",
                recall_ratio(ours, theirs),
                target=1.0,
                peer=peer,
                kind="quality",
                note=f"recall {ours.recall:.3f} vs {theirs.recall:.3f} {counts}",
            )
        else:
            # No ratio to a peer that found none (it would be infinite, and not JSON):
            # our recall itself, met only when we find at least one of the family.
            report(
                BENCHMARK,
                f"scan-recall[{family}]",
                ours.recall,
                target=1 / len(of_family),
                peer=peer,
                kind="quality",
                digits=3,
                note=f"detect-secrets found none, so no ratio: at least one to meet {counts}",
            )
        if ours.tp + ours.fp == 0:
            print(
                f"family {family}: interlock scan reported nothing in its files; "
                "no precision figure reported"
            )
            continue
        report(
            BENCHMARK,
            f"scan-precision[{family}]",
            ours.precision,
            target=0.9,
            peer="",
            kind="quality",
            note=f"over the family's {len(paths)} files (detect-secrets: {theirs.precision:.3f})",
        )
    scores = {name: score(labels, found, every_path, labels) for name, found in results.items()}
    print("overall:")
    for name, result in scores.items():
        print(row(name, result))
    ours, theirs = scores[INTERLOCK], scores[peer]
    report(
        BENCHMARK,
        "scan-recall-vs-detect-secrets",
        recall_ratio(ours, theirs),
        target=1.0,
        peer=peer,
        kind="quality",
        note=f"recall {ours.recall:.3f} vs {theirs.recall:.3f} on {len(labels)} labelled secrets",
    )
    report(
        BENCHMARK,
        "scan-precision",
        ours.precision,
        target=0.9,
        peer="",
        kind="quality",
        note=f"interlock scan on the same tree (detect-secrets: {theirs.precision:.3f})",
    )


def main() -> int:
    """Fetch the labelled data, run the three scanners, print scores, report the ratios."""
    bin_dir = Path(sys.executable).parent
    missing = [name for name in ("detect-secrets", "bandit") if not (bin_dir / name).exists()]
    if missing:
        print(f"{', '.join(missing)} not in {bin_dir}: run `make bench-env` first", file=sys.stderr)
        return 2
    peers = {
        INTERLOCK: None,
        f"detect-secrets {version('detect-secrets')} (default plugins, --all-files)": "ds",
        f"bandit {version('bandit')} (B105-B107, Python only)": "bandit",
    }
    try:
        documents, labels = fetch_labelled(version("bandit"))
    except (OSError, httpx.HTTPError) as error:
        print(
            f"benchmarks/scan: cannot fetch the labelled data from PyPI ({error}); "
            "nothing measured",
            file=sys.stderr,
        )
        return 2
    bandit_labels = sum(1 for label in labels if label.path.startswith("bandit/"))
    if bandit_labels != BANDIT_EXPECTED:
        print(f"bandit's example has {bandit_labels} labelled lines, not 16", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="interlock-scan-bench-") as tmp:
        root = Path(tmp)
        write_tree(root, documents)
        started = time.perf_counter()
        results = {
            name: interlock(root)
            if kind is None
            else detect_secrets(bin_dir, root)
            if kind == "ds"
            else bandit(bin_dir, root)
            for name, kind in peers.items()
        }
        elapsed = time.perf_counter() - started
    every_path = {d.path for d in documents}
    families = sorted({label.family for label in labels})
    print(
        f"labelled data: {len(documents)} files, {len(labels)} labelled secrets in "
        f"{len(families)} families, {len(documents) - len({lb.path for lb in labels})} clean "
        f"files ({elapsed:.1f}s for the three scans)"
    )
    report_scores(labels, results, every_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
