"""Precision and recall of ``interlock scan`` against real peers, on one planted corpus.

The corpus (``interlock.testing.scan_corpus``) is written at run time into a
temporary directory: planted provider tokens, Interlock keys, private keys,
URL passwords and generic secrets in Python, YAML, JSON, .env, INI, TOML and JS
files; insecure switches in Python and config files; and look-alikes of both
(wrong checksums, docs examples, placeholders, references, safe forms,
comments). The seed differs from the unit test's, so the values differ too.

* secrets: ours vs detect-secrets (Yelp, default plugins, ``scan --all-files``)
  over the secret and look-alike files;
* insecure switches in Python: ours vs bandit (``-r``, counting only its
  TLS/SSH/YAML/XML checks) over the Python switch files (bandit reads Python
  only, so config-file switches are reported for ours alone).

A finding counts as a true positive when it is on the planted line (one per
line). The peers are the versions locked in the ``bench`` group of ``uv.lock``
(``make bench-env`` installs them into ``.venv``).
Run: ``.venv/bin/python benchmarks/scan/run.py [--seed 2307]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from interlock.scan import Baseline, scan
from interlock.testing.scan_corpus import Case, Score, score, write_corpus

# bandit checks that look for the switches we look for (TLS, SSH host keys, YAML, XML).
BANDIT_SWITCH_TESTS = frozenset(
    {"B501", "B323", "B507", "B506", "B313", "B314", "B315", "B316", "B317", "B318", "B319", "B320"}
)


def peers_bin() -> Path:
    """The directory holding detect-secrets and bandit: the bench group of uv.lock."""
    bin_dir = Path(sys.executable).parent
    missing = [name for name in ("detect-secrets", "bandit") if not (bin_dir / name).exists()]
    if missing:
        sys.exit(f"{', '.join(missing)} not in {bin_dir}: run `make bench-env` first")
    return bin_dir


def subset(cases: Iterable[Case], prefix: str, kind: str) -> list[Case]:
    """Cases under ``prefix`` that plant ``kind`` or nothing."""
    return [c for c in cases if c.path.startswith(prefix) and c.kind in (kind, None)]


def ours(root: Path, cases: list[Case], kind: str) -> tuple[Score, float]:
    """Our score on ``cases`` (only findings of ``kind`` in their files) and the scan time."""
    started = time.perf_counter()
    report = scan(root, Baseline())
    elapsed = time.perf_counter() - started
    paths = {c.path for c in cases}
    found = {
        (f.path, f.line, f.kind) for f in report.findings if f.kind == kind and f.path in paths
    }
    return score(cases, found), elapsed


def detect_secrets(bin_dir: Path, root: Path, cases: list[Case]) -> tuple[Score, float]:
    """detect-secrets' score on the secret cases."""
    started = time.perf_counter()
    output = subprocess.run(
        [str(bin_dir / "detect-secrets"), "scan", "--all-files", "secrets", "lookalikes"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    elapsed = time.perf_counter() - started
    found = {
        (Path(name).as_posix(), hit["line_number"], "secret")
        for name, hits in json.loads(output)["results"].items()
        for hit in hits
    }
    return score(cases, found), elapsed


def bandit(bin_dir: Path, root: Path, cases: list[Case]) -> tuple[Score, float]:
    """bandit's score on the Python switch cases (its TLS/SSH/YAML/XML checks)."""
    started = time.perf_counter()
    completed = subprocess.run(
        [str(bin_dir / "bandit"), "-r", "switches", "-f", "json", "-q"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,  # exit 1 when it finds something
    )
    elapsed = time.perf_counter() - started
    found = {
        (Path(r["filename"]).as_posix(), r["line_number"], "switch")
        for r in json.loads(completed.stdout)["results"]
        if r["test_id"] in BANDIT_SWITCH_TESTS
    }
    return score(cases, found), elapsed


def line(name: str, result: Score, seconds: float) -> str:
    """One result row."""
    return (
        f"{name:<34} precision {result.precision:.3f}  recall {result.recall:.3f}  "
        f"(tp {result.true_positives}, fp {result.false_positives}, fn {result.false_negatives})  "
        f"{seconds:.2f}s"
    )


def ratio(name: str, mine: float, theirs: float, target: float) -> str:
    """A ``ratio NAME: R (target >= T)`` line."""
    value = mine / theirs if theirs else float("inf")
    return f"ratio {name}: {value:.2f} (target >= {target:g})"


def main() -> None:
    """Write the corpus, run the three scanners, print scores and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=2307)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="interlock-scan-bench-") as tmp:
        work = Path(tmp)
        bin_dir = peers_bin()
        root = work / "corpus"
        cases = write_corpus(root, seed=args.seed, rounds=args.rounds)
        secret_cases = [
            c for c in cases if c.kind in ("secret", None) and not c.path.startswith("switches/")
        ]
        py_switch_cases = [
            c for c in cases if c.path.startswith("switches/") and c.path.endswith(".py")
        ]
        all_switch_cases = subset(cases, "switches/", "switch")
        planted = sum(c.kind is not None for c in cases)
        print(
            f"corpus: {len(cases)} files, {planted} planted, {len(cases) - planted} look-alikes (seed {args.seed})"
        )
        our_secrets, t1 = ours(root, secret_cases, "secret")
        their_secrets, t2 = detect_secrets(bin_dir, root, secret_cases)
        our_py, t3 = ours(root, py_switch_cases, "switch")
        their_py, t4 = bandit(bin_dir, root, py_switch_cases)
        our_switches, t5 = ours(root, all_switch_cases, "switch")
        print(line("secrets: interlock scan", our_secrets, t1))
        print(line("secrets: detect-secrets 1.5", their_secrets, t2))
        print(line("python switches: interlock scan", our_py, t3))
        print(line("python switches: bandit 1.9", their_py, t4))
        print(line("all switches: interlock scan", our_switches, t5))
        print(
            ratio(
                "secrets-precision-vs-detect-secrets",
                our_secrets.precision,
                their_secrets.precision,
                1,
            )
        )
        print(
            ratio("secrets-recall-vs-detect-secrets", our_secrets.recall, their_secrets.recall, 1)
        )
        print(ratio("switches-precision-vs-bandit", our_py.precision, their_py.precision, 1))
        print(ratio("switches-recall-vs-bandit", our_py.recall, their_py.recall, 1))
        print(ratio("secrets-precision-vs-gitleaks-published-0.46", our_secrets.precision, 0.46, 1))


if __name__ == "__main__":
    main()
