"""tools/check_floors.py: a floor the lowest install does not sit on is named, with its line."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from tools.check_floors import problems

PYTEST = metadata.version("pytest")


def _pyproject(tmp_path: Path, dependencies: list[str], dev: tuple[str, ...] = ()) -> Path:
    quoted = ", ".join(f'"{d}"' for d in dependencies)
    dev_quoted = ", ".join(f'"{d}"' for d in dev)
    path = tmp_path / "pyproject.toml"
    path.write_text(
        f'[project]\nname = "x"\ndependencies = [\n  {quoted},\n]\n'
        f'[dependency-groups]\ndev = [{dev_quoted}]\nbench = ["nosuchthing>=1"]\n'
    )
    return path


def test_a_dependency_installed_at_its_floor_passes(tmp_path: Path) -> None:
    """pytest>=<installed version> is exactly met; bench is not checked."""
    assert problems(_pyproject(tmp_path, [f"pytest>={PYTEST}"])) == []


def test_a_floor_below_the_installed_version_is_named_with_file_and_line(tmp_path: Path) -> None:
    """pytest>=1.0 when a newer pytest is installed: not a floor anyone tested."""
    path = _pyproject(tmp_path, ["pytest>=1.0"])
    [problem] = problems(path)
    assert problem.startswith(f"{path}:4: project.dependencies: pytest floor is 1.0 ")
    assert f"installs {PYTEST}: raise the floor to {PYTEST}" in problem


def test_a_missing_floor_and_a_missing_package_are_refused(tmp_path: Path) -> None:
    """Every dependency needs a floor; a declared one must be installed."""
    path = _pyproject(tmp_path, ["pytest"], dev=("nosuch-package-xyz>=1.0",))
    found = problems(path)
    assert any("pytest has no floor" in p for p in found)
    assert any("dependency-groups.dev: nosuch-package-xyz is not installed" in p for p in found)


def test_a_requirement_for_another_platform_is_skipped(tmp_path: Path) -> None:
    """uvloop-style markers that do not apply here are not checked."""
    path = _pyproject(tmp_path, ["nosuch-package-xyz>=1.0; sys_platform == 'nonexistent'"])
    assert problems(path) == []
