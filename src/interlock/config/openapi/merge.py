"""Generated routes merged into the manifest, checked, and written atomically.

Merging replaces, in a route with the same method and path template, only the
fields the import owns, so hand-added rate limits, response allow-lists and
rules survive a re-import; comments, key order and quoting survive too
(ruamel.yaml round trip).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from interlock.config.checks import known_hint
from interlock.config.loader import DeepCheck, check_manifest, format_path, load_manifest
from interlock.config.manifest import PATTERN_HELP, SCOPE_PATTERN, Manifest, template_shape
from interlock.config.openapi.convert import SchemaCheck, convert_openapi
from interlock.config.openapi.document import read_openapi
from interlock.config.yaml_source import DocPath, read_yaml
from interlock.errors import InvalidRequestError, ManifestError, NotFoundError

__all__ = ["ImportPlan", "apply_import", "merge_routes", "plan_import", "routes_yaml"]

# Keys of a route the import owns; everything else in an existing route is kept.
_OWNED: Final = (
    "method",
    "path",
    "upstream",
    "upstream_path",
    "scope",
    "content_types",
    "request_schema",
    "params",
    "query",
)


@dataclass(frozen=True)
class ImportPlan:
    """An import worked out: the generated routes and the manifest text before and after."""

    manifest: Path
    integration: str
    routes: tuple[dict[str, Any], ...]
    added: int
    replaced: int  # existing routes (same method and path template) the import changed
    warnings: tuple[str, ...]
    before: str = field(repr=False)
    after: str = field(repr=False)
    # Data categories proposed for request body fields, one line each.
    notes: tuple[str, ...] = ()
    # Existing routes the import matched and left as they were.
    unchanged: int = 0


def plan_import(
    spec: Path,
    manifest: Path,
    *,
    system: str,
    integration: str | None = None,
    scope_prefix: str | None = None,
    schema_check: SchemaCheck | None = None,
) -> ImportPlan:
    """The manifest with the routes ``spec`` describes for ``system`` merged in (not written).

    The manifest must already be valid and declare ``system`` and the
    integration, with its GDPR facts: the import never invents a purpose or a
    legal basis. ``integration`` defaults to the one integration whose routes
    use ``system`` (else the one whose source or target it is). ``schema_check``
    is passed to :func:`convert_openapi`.
    """
    current = load_manifest(manifest)
    if system not in current.systems:
        message = f"unknown system {system!r}{known_hint(system, current.systems, 'systems')}"
        raise NotFoundError(_located(manifest, ("systems",), message))
    name = _integration(current, system, integration, manifest)
    if scope_prefix is not None and not re.match(SCOPE_PATTERN, scope_prefix):
        raise InvalidRequestError(f"--scope-prefix {scope_prefix!r}: {PATTERN_HELP[SCOPE_PATTERN]}")
    conversion = convert_openapi(
        read_openapi(spec),
        system=system,
        system_url=current.systems[system].url,
        scope_prefix=scope_prefix,
        schema_check=schema_check,
    )
    before = manifest.read_text(encoding="utf-8")
    after, added, replaced, unchanged = merge_routes(before, name, conversion.routes)
    return ImportPlan(
        manifest,
        name,
        conversion.routes,
        added,
        replaced,
        conversion.warnings,
        before,
        after,
        conversion.notes,
        unchanged,
    )


def apply_import(plan: ImportPlan, *, dry_run: bool = False, deep: DeepCheck | None = None) -> bool:
    """Check the merged manifest like ``interlock validate``; write it if valid. True if written.

    The result goes to a temporary file beside the manifest (so relative
    paths in it resolve as they will) and is checked there with
    :func:`check_manifest` and ``deep``; only a valid result replaces the
    manifest (``os.replace``, same mode), so on any error (a
    :class:`ManifestError` carrying every located problem) the manifest is
    untouched. A dry run checks the same way and removes the temporary file;
    an unchanged manifest is not rewritten.
    """
    if plan.after == plan.before:
        return False
    _check_and_write(plan.manifest, plan.after, write=not dry_run, deep=deep)
    return not dry_run


def merge_routes(
    text: str, integration: str, routes: tuple[dict[str, Any], ...]
) -> tuple[str, int, int, int]:
    """``text`` with ``routes`` in ``integration`` (comments and order kept).

    Also the counts: routes added, existing routes replaced (changed) and existing
    routes left unchanged. A route with the same method and path template is
    updated in place: the fields the import owns are set, everything else in it
    is kept.
    """
    yaml = _round_trip(text)
    data = yaml.load(text)
    flow = data["integrations"][integration]
    existing = flow.get("routes")
    if not isinstance(existing, CommentedSeq):
        existing = flow["routes"] = CommentedSeq()
    if flow.fa.flow_style() or existing.fa.flow_style():
        flow.fa.set_block_style()
        existing.fa.set_block_style()
    index: dict[tuple[str, str], int] = {}
    for position, old in enumerate(existing):
        if isinstance(old, dict):
            key = (str(old.get("method", "")).upper(), template_shape(str(old.get("path", ""))))
            index.setdefault(key, position)
    added = replaced = unchanged = 0
    for route in routes:
        key = (route["method"], template_shape(route["path"]))
        if key in index:
            if _update(existing[index[key]], route):
                replaced += 1
            else:
                unchanged += 1
        else:
            index[key] = len(existing)
            existing.append(entry := _yaml_value(route))
            entry.fa.set_block_style()
            added += 1
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue(), added, replaced, unchanged


def routes_yaml(routes: tuple[dict[str, Any], ...]) -> str:
    """The routes as the YAML list the manifest would hold."""
    yaml = _round_trip("")
    out = io.StringIO()
    entries = _yaml_value(list(routes))
    for entry in entries:
        entry.fa.set_block_style()
    yaml.dump(entries, out)
    return out.getvalue()


def _update(target: CommentedMap, route: dict[str, Any]) -> bool:
    """Set the fields the import owns in ``target``; whether any value changed."""
    changed = False
    previous: str | None = None
    for key in _OWNED:
        if key not in route:
            if key in target:
                del target[key]
                changed = True
            continue
        if key not in target:
            keys = list(target)
            position = keys.index(previous) + 1 if previous in keys else len(keys)
            target.insert(position, key, _yaml_value(route[key]))
            changed = True
        elif target[key] != route[key]:  # unchanged values keep their formatting
            target[key] = _yaml_value(route[key])
            changed = True
        previous = key
    for key in ("xml", "csv"):  # a policy tuned by hand (an XSD, limits) stays
        if key in route and key not in target:
            target[key] = _yaml_value(route[key])
            changed = True
    if changed and target.fa.flow_style():
        target.fa.set_block_style()
    return changed


def _yaml_value(value: Any) -> Any:
    """Round-trip containers; short all-scalar mappings and scalar lists in flow style."""
    if isinstance(value, dict):
        mapping = CommentedMap((k, _yaml_value(v)) for k, v in value.items())
        if 0 < len(value) <= 5 and all(_flat(v) for v in value.values()):
            mapping.fa.set_flow_style()
        return mapping
    if isinstance(value, list):
        sequence = CommentedSeq(_yaml_value(v) for v in value)
        if all(not isinstance(v, dict | list) for v in value):
            sequence.fa.set_flow_style()
        return sequence
    return value


def _flat(value: object) -> bool:
    if isinstance(value, list):
        return all(not isinstance(v, dict | list) for v in value)
    return not isinstance(value, dict)


def _round_trip(text: str) -> YAML:
    yaml = YAML()  # round-trip mode: comments, key order and quoting survive
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the file's long lines
    mapping, offset = _indentation(text)
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return yaml


def _indentation(text: str) -> tuple[int, int]:
    """The file's mapping indent and block-sequence dash offset (default 2 and 2)."""
    mapping: int | None = None
    offset: int | None = None
    parent: int | None = None  # indentation of the last line that is only "key:"
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if parent is not None and indent > parent:
            if stripped.startswith("- ") and offset is None:
                offset = indent - parent
            elif not stripped.startswith("- ") and mapping is None:
                mapping = indent - parent
        parent = indent if stripped.endswith(":") and not stripped.startswith("-") else None
    return mapping or 2, 2 if offset is None else offset


def _check_and_write(manifest: Path, text: str, *, write: bool, deep: DeepCheck | None) -> None:
    real = manifest.resolve()
    # Beside the manifest, so that os.replace is an atomic rename on one file system.
    handle, name = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".import", dir=real.parent)
    temporary = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        report = check_manifest(temporary, deep)
        if report.errors:
            errors = tuple(dataclasses.replace(d, file=str(manifest)) for d in report.errors)
            raise ManifestError(
                f"{errors[0]} (in the manifest as the import would leave it; nothing was written)",
                diagnostics=errors,
            )
        if write:
            temporary.chmod(stat.S_IMODE(real.stat().st_mode))
            temporary.replace(real)  # os.replace: atomic
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _integration(manifest: Manifest, system: str, wanted: str | None, file: Path) -> str:
    flows = manifest.integrations
    if wanted is not None:
        flow = flows.get(wanted)
        if flow is None:
            message = (
                f"unknown integration {wanted!r}{known_hint(wanted, flows, 'integrations')}; "
                "declare it first, with its purpose and legal basis"
            )
            raise NotFoundError(_located(file, ("integrations",), message))
        if system not in {flow.source, flow.target}:
            message = (
                f"integration {wanted!r} connects {flow.source} and {flow.target}, not {system}"
            )
            raise InvalidRequestError(_located(file, ("integrations", wanted), message))
        return wanted
    using = sorted(n for n, f in flows.items() if any(r.upstream == system for r in f.routes))
    using = using or sorted(n for n, f in flows.items() if system in {f.source, f.target})
    if len(using) == 1:
        return using[0]
    if using:
        message = f"system {system!r} is used by {', '.join(using)}; choose with --integration"
        raise InvalidRequestError(_located(file, ("integrations",), message))
    message = (
        f"no integration connects system {system!r}; declare one (source, target, client, "
        "purpose, legal_basis, retention) first"
    )
    raise NotFoundError(_located(file, ("integrations",), message))


def _located(manifest: Path, path: DocPath, message: str) -> str:
    line, column = read_yaml(manifest).position(path, key=True)
    return f"{manifest}:{line}:{column}: {format_path(path)}: {message}"
