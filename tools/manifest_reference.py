"""Generate the manifest's JSON Schema and docs/manifest.md from the pydantic models.

``make manifest-docs`` runs this; ``make manifest-drift`` (in ``make test``) runs it with
``--check``, which writes nothing and fails when either committed file differs
from what the models produce. Both come from one place,
:meth:`Manifest.model_json_schema` (validation mode), so the schema an editor
checks against and the reference a person reads cannot disagree.

The schema is pydantic's, with what editors need added: ``$schema`` (2020-12),
``$id``, a title, no generated per-field titles (the description is the better
hover text), names of map entries as ``propertyNames`` (so a mistyped name is
flagged and every entry completes), ``null`` where the loader reads an empty
section as empty, and ``examples`` taken from ``examples/interlock.yaml`` (read
with the project's YAML reader), a manifest the tests prove valid.

Patterns the manifest's vocabulary names (durations, rates, names, ``secret://``
references ...) carry ``patternErrorMessage``, the YAML language server's
keyword for saying the rule in words; other validators ignore it.

Usage: python tools/manifest_reference.py [--check]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Final

import yaml

if __package__ in {None, ""}:  # run as a file: make ``tools`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from interlock.config import units, vocabulary
from interlock.config.manifest import Manifest
from interlock.config.yaml_source import read_yaml

ROOT: Final = Path(__file__).resolve().parents[1]
SCHEMA: Final = ROOT / "src" / "interlock" / "config" / "manifest.schema.json"
DOC: Final = ROOT / "docs" / "manifest.md"
EXAMPLE: Final = ROOT / "examples" / "interlock.yaml"
SCHEMA_ID: Final = "urn:interlock:manifest:1"
DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
#: What to tell someone whose committed files differ from the models.
FIX: Final = "run `make manifest-docs` and commit the result"

Schema = dict[str, Any]

#: Sections the loader reads as empty when the YAML leaves them blank (``rules:``).
_NULLABLE: Final = (
    ("Manifest", "tls"),
    *(
        ("Manifest", section)
        for section in (
            "systems",
            "roles",
            "clients",
            "integrations",
            "trusted_issuers",
            "rules",
            "shared_scopes",
            "brokers",
            "partners",
            "databases",
            "operators",
        )
    ),
    ("Integration", "routes"),
)
#: An example longer than this (as JSON) stays out of the schema and the table.
_EXAMPLE_CHARS: Final = 120


#: Text values the manifest writes in a form of their own, recognised by their pattern:
#: pattern -> (type, what it is, an example).
KINDS: Final[dict[str, tuple[str, str, str]]] = {
    units.DURATION_PATTERN: (
        "duration",
        "a positive duration: 90d, 24h, 10m, 30s, 2w, or ISO 8601 such as P90D or PT10M "
        "(a bare number is refused: it would read as seconds)",
        "90d",
    ),
    units.RATE_PATTERN: (
        "rate",
        "at most N per period: 1000/min, 5/s, 100/hour, 10/5min",
        "1000/min",
    ),
    units.SIZE_PATTERN: ("size", "a number of bytes, or 1MiB, 512KiB, 10MB (1 B to 1 GiB)", "1MiB"),
    vocabulary.NAME_PATTERN: ("name", vocabulary.PATTERN_HELP[vocabulary.NAME_PATTERN], "erp"),
    vocabulary.RULE_NAME_PATTERN: (
        "rule name",
        vocabulary.PATTERN_HELP[vocabulary.RULE_NAME_PATTERN],
        "order_total_matches_lines",
    ),
    vocabulary.OPERATOR_NAME_PATTERN: (
        "operator name",
        vocabulary.PATTERN_HELP[vocabulary.OPERATOR_NAME_PATTERN],
        "alice",
    ),
    vocabulary.SCOPE_PATTERN: (
        "scope",
        vocabulary.PATTERN_HELP[vocabulary.SCOPE_PATTERN],
        "orders.read",
    ),
    vocabulary.COUNTRY_PATTERN: (
        "country",
        vocabulary.PATTERN_HELP[vocabulary.COUNTRY_PATTERN],
        "DE",
    ),
    vocabulary.CATEGORY_PATTERN: (
        "data category",
        vocabulary.PATTERN_HELP[vocabulary.CATEGORY_PATTERN],
        "user.contact.email",
    ),
    vocabulary.SUBJECT_PATTERN: (
        "data subject",
        vocabulary.PATTERN_HELP[vocabulary.SUBJECT_PATTERN],
        "customer",
    ),
    vocabulary.FIELD_PATTERN: (
        "field path",
        vocabulary.PATTERN_HELP[vocabulary.FIELD_PATTERN],
        "items[].sku",
    ),
    vocabulary.SSH_KEY_PATTERN: (
        "SSH public key",
        vocabulary.PATTERN_HELP[vocabulary.SSH_KEY_PATTERN],
        "ssh-ed25519 AAAAC3Nza... partner",
    ),
    vocabulary.SECRET_REF_PATTERN: (
        "secret reference",
        "a secret:// reference into Interlock's vault; secrets are never written into the manifest",
        "secret://erp/api-key",
    ),
    vocabulary.TRUST_ANCHOR_PATTERN: (
        "trust anchor",
        "what a certificate must chain to: system (the OS trust store), pki:NAME (Interlock's "
        "own CA) or file:PATH (a PEM bundle); never a value that switches verification off",
        "pki:internal",
    ),
    vocabulary.HTTPS_URL_PATTERN: (
        "https URL",
        "an https:// URL (plain http is refused)",
        "https://erp.example.com",
    ),
}

# -- the schema -------------------------------------------------------------------------


def build_schema(example: Path = EXAMPLE) -> Schema:
    """The manifest's JSON Schema, as published in the package."""
    raw = Manifest.model_json_schema(mode="validation")
    defs: dict[str, Schema] = raw.pop("$defs")
    defs["Manifest"] = raw
    for model in defs.values():
        for prop in model.get("properties", {}).values():
            prop.pop("title", None)
            _names_as_property_names(prop)
    _explain_patterns(defs)
    for model_name, field in _NULLABLE:
        prop = defs[model_name]["properties"][field]
        defs[model_name]["properties"][field] = _or_null(prop)
    for (model_name, field), value in harvest(defs, read_yaml(example).data).items():
        prop = defs[model_name]["properties"][field]
        if "examples" not in prop and _small(value):
            prop["examples"] = [value]
    manifest = defs.pop("Manifest")
    manifest.pop("title", None)
    return {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        "title": "Interlock manifest (interlock.yaml)",
        **manifest,
        "$defs": dict(sorted(defs.items())),
    }


def schema_text(schema: Schema) -> str:
    """The schema file's text: stable key order as generated, two-space indent."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _names_as_property_names(node: object) -> None:
    """``{NAME_PATTERN: X}`` maps: the pattern constrains names, X completes every entry."""
    if isinstance(node, list):
        for item in node:
            _names_as_property_names(item)
        return
    if not isinstance(node, dict):
        return
    patterns = node.get("patternProperties")
    if node.get("type") == "object" and isinstance(patterns, dict) and len(patterns) == 1:
        ((pattern, value),) = patterns.items()
        del node["patternProperties"]
        node["propertyNames"] = {"pattern": pattern}
        node["additionalProperties"] = value
    for value in node.values():
        _names_as_property_names(value)


def _explain_patterns(node: object) -> None:
    """``patternErrorMessage`` (the YAML language server's): the rule in words, not a regex."""
    if isinstance(node, list):
        for item in node:
            _explain_patterns(item)
    elif isinstance(node, dict):
        pattern = node.get("pattern")
        kind = KINDS.get(pattern) if isinstance(pattern, str) else None
        if kind is not None:
            node["patternErrorMessage"] = f"{kind[0]}: {kind[1]}"
        for value in node.values():
            _explain_patterns(value)


def _or_null(prop: Schema) -> Schema:
    keep: Schema = {k: prop.pop(k) for k in ("default", "description") if k in prop}
    return {"anyOf": [prop, {"type": "null"}], **keep}


def _small(value: object) -> bool:
    return len(json.dumps(value, ensure_ascii=False)) <= _EXAMPLE_CHARS


def harvest(defs: dict[str, Schema], data: object) -> dict[tuple[str, str], object]:
    """The first value the example manifest gives each (model, field), by walking the schema."""
    found: dict[tuple[str, str], object] = {}
    _walk(defs, data, {"$ref": "#/$defs/Manifest"}, found)
    return found


def _walk(
    defs: dict[str, Schema], value: object, node: Schema, found: dict[tuple[str, str], object]
) -> None:
    name, node = _resolve(defs, node)
    for option in node.get("anyOf", ()):
        if _fits(defs, value, option):
            _walk(defs, value, option, found)
            return
    if isinstance(value, dict):
        properties = node.get("properties", {})
        extra = node.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                if name is not None:
                    found.setdefault((name, key), item)
                _walk(defs, item, properties[key], found)
            elif isinstance(extra, dict):
                _walk(defs, item, extra, found)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for item in value:
            _walk(defs, item, node["items"], found)


def _resolve(defs: dict[str, Schema], node: Schema) -> tuple[str | None, Schema]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[1]
        return name, defs[name]
    return None, node


def _fits(defs: dict[str, Schema], value: object, option: Schema) -> bool:
    _, node = _resolve(defs, option)
    kind = node.get("type")
    if isinstance(value, dict):
        return kind == "object"
    if isinstance(value, list):
        return kind == "array"
    return kind not in {"object", "array", "null"} or (value is None and kind == "null")


# -- the reference ----------------------------------------------------------------------

_HEADER: Final = """\
# The manifest reference

<!-- Generated by tools/manifest_reference.py from the manifest's models
(src/interlock/config/); do not edit by hand: run `make manifest-docs`. -->

Every key of the manifest (`interlock.yaml`), section by section: its type, its
default, what it means and an example (taken from `examples/interlock.yaml`
where it has one). Unknown keys are errors; `interlock validate FILE` reports
every problem at once, located as `FILE:LINE:COL: field.path: message`.

The same models generate the manifest's JSON Schema (2020-12), shipped in the
package as `interlock/config/manifest.schema.json` and printed by
`interlock manifest schema`. Editors with the YAML language server (VS Code's
YAML extension; Neovim and Helix with yaml-language-server) complete and check
a manifest against it when its first line names the schema:

```yaml
# yaml-language-server: $schema=interlock.schema.json
version: 1
```

```sh
interlock manifest schema -o interlock.schema.json   # next to your interlock.yaml
```

The schema checks each value's shape (types, allowed values, patterns, unknown
keys); what relates one entry to another (unknown names, scopes no role
grants, GDPR facts) only `interlock validate` checks.
"""


def render(schema: Schema, example: Path = EXAMPLE) -> str:
    """docs/manifest.md: the value types, then each top-level section and the models below it."""
    defs: dict[str, Schema] = schema["$defs"]
    data = read_yaml(example).data
    sample = data if isinstance(data, dict) else {}
    found = harvest({**defs, "Manifest": schema}, data)
    out = [_HEADER, "## Value types\n", "Text values with a form of their own:\n"]
    out.append("| Type | Written as | Example |\n|---|---|---|")
    used = set(_patterns(schema))
    for pattern, (kind, meaning, instance) in KINDS.items():
        if pattern in used:
            out.append(f"| {kind} | {_cell(meaning)} | {_code(instance)} |")
    out.append("")
    done: set[str] = set()
    out.append("## Top level\n")
    out.append(_cell(_docstring(schema.get("description", ""))) + "\n")
    out.append(_table(schema, "Manifest", found))
    for key, prop in schema["properties"].items():
        refs = list(_refs(prop))
        if not refs:
            continue
        out.append(f"## `{key}`\n")
        out.append(_cell(prop.get("description", "")) + "\n")
        if sample.get(key):
            out.append("```yaml\n" + _first_entry(key, sample[key]) + "```\n")
        path = key + (".NAME" if _is_map(prop) else "")
        for ref in refs:
            out.extend(_model_sections(defs, ref, path, found, done))
    return "\n".join(out).rstrip() + "\n"


def _model_sections(
    defs: dict[str, Schema],
    name: str,
    path: str,
    found: dict[tuple[str, str], object],
    done: set[str],
) -> list[str]:
    if name in done:
        return []
    done.add(name)
    model = defs[name]
    out = [f'<a id="{name.lower()}"></a>\n', f"### `{path}` ({name})\n"]
    out.append(_docstring(model.get("description", "")) + "\n")
    out.append(_table(model, name, found))
    for field, prop in model.get("properties", {}).items():
        suffix = ".NAME" if _is_map(prop) else "[]" if _is_list(prop) else ""
        for ref in _refs(prop):
            out.extend(_model_sections(defs, ref, f"{path}.{field}{suffix}", found, done))
    return out


def _table(model: Schema, name: str, found: dict[tuple[str, str], object]) -> str:
    required = set(model.get("required", ()))
    rows = ["| Field | Type | Default | Description | Example |", "|---|---|---|---|---|"]
    for field, prop in model.get("properties", {}).items():
        default = "required" if field in required else _default(prop)
        example = _example(prop, found.get((name, field), _MISSING))
        rows.append(
            f"| `{field}` | {_type(prop)} | {default} | {_cell(prop.get('description', ''))} "
            f"| {example} |"
        )
    return "\n".join(rows) + "\n"


_MISSING: Final = object()


def _type(node: Schema) -> str:  # noqa: PLR0911 (one return per kind of schema)
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        return " or ".join(_type(o) for o in options)
    if "const" in node:
        return _code(node["const"])
    if "enum" in node:
        return " \\| ".join(_code(v) for v in node["enum"])
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        kind = KINDS.get(pattern)
        return kind[0] if kind else f"string matching {_code(pattern)}"
    kind = node.get("type")
    if kind == "array":
        items = node.get("items")
        text = "list of " + (_type(items) if isinstance(items, dict) else "values")
        return text + _bounds(node, "minItems", "maxItems", "items")
    if kind == "object":
        value = node.get("additionalProperties")
        if isinstance(value, dict):
            names = node.get("propertyNames", {}).get("pattern")
            key = KINDS[names][0] if names in KINDS else "text"
            return f"map of {key} → {_type(value)}" + _bounds(
                node, "minProperties", "maxProperties", "entries"
            )
        return "object"
    if kind in {"integer", "number"}:
        return str(kind) + _bounds(node, "minimum", "maximum", "")
    if kind == "string":
        return "text" + _bounds(node, "minLength", "maxLength", "characters")
    if kind == "boolean":
        return "boolean"
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    return "any value"


def _bounds(node: Schema, low: str, high: str, unit: str) -> str:
    lo, hi = node.get(low), node.get(high)
    unit = f" {unit}" if unit else ""
    if lo is not None and hi is not None:
        return f" ({lo}-{hi}{unit})"
    if lo == 1 and unit != " characters":
        return " (at least one)"
    if lo is not None and lo not in {0, 1}:
        return f" (at least {lo}{unit})"
    if hi is not None:
        return f" (at most {hi}{unit})"
    return ""


def _default(prop: Schema) -> str:
    if "default" not in prop:
        return "empty" if _is_map(prop) or _is_list(prop) else "—"
    value = prop["default"]
    if value is None:
        return "none"
    if isinstance(value, dict) and value:
        return "its fields' defaults"
    return _code(value)


def _example(prop: Schema, harvested: object) -> str:  # noqa: PLR0911 (first found wins)
    if _refs(prop):
        return "see below"
    if harvested is not _MISSING and _small(harvested):
        return _code(harvested)
    if prop.get("default") not in (None, [], {}) and not isinstance(prop.get("default"), dict):
        return _code(prop["default"])
    for node in (prop, *prop.get("anyOf", ())):
        if node.get("examples"):
            return _code(node["examples"][0])
        if "const" in node:
            return _code(node["const"])
        if node.get("enum"):
            return _code(node["enum"][-1])
        pattern = node.get("pattern")
        if isinstance(pattern, str) and pattern in KINDS:
            return _code(KINDS[pattern][2])
        if node.get("type") == "boolean":
            return _code(not prop.get("default", False))
        items = node.get("items")
        if isinstance(items, dict):
            inner = _example(items, _MISSING)
            return f"`[{inner[1:-1]}]`" if inner.startswith("`") and inner[1] != "`" else inner
    return "—"


def _refs(node: object) -> list[str]:
    """The models a property leads to, in order, without repeats."""
    found: list[str] = []
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.append(ref.rsplit("/", 1)[1])
        for key in ("anyOf", "items", "additionalProperties"):
            value = node.get(key)
            for part in value if isinstance(value, list) else [value]:
                found.extend(r for r in _refs(part) if r not in found)
    return found


def _is_map(node: Schema) -> bool:
    return any(
        o.get("type") == "object" and isinstance(o.get("additionalProperties"), dict)
        for o in (node, *node.get("anyOf", ()))
    )


def _is_list(node: Schema) -> bool:
    return any(o.get("type") == "array" for o in (node, *node.get("anyOf", ())))


def _patterns(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        names = node.get("propertyNames")
        if isinstance(names, dict) and isinstance(names.get("pattern"), str):
            found.append(names["pattern"])
        return found + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


def _first_entry(key: str, value: object) -> str:
    """The section's first entry (and of each list of mappings in it, the first item)."""
    if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
        name = next(iter(value))
        value = {name: value[name]}
    return yaml.safe_dump({key: _first_items(value)}, sort_keys=False, allow_unicode=True, width=88)


def _first_items(value: object) -> object:
    if isinstance(value, dict):
        return {k: _first_items(v) for k, v in value.items()}
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [_first_items(value[0])]
    return value


def _code(value: object) -> str:
    text = value if isinstance(value, str) else _flow(value)
    text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _flow(value: object) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000)
    return text.removesuffix("\n").removesuffix("\n...").strip()


_ROLE: Final = re.compile(r":[a-z]+:`~?([^`]+)`")


def _docstring(text: str) -> str:
    """A model's docstring as Markdown: RST roles and double back-quotes to code spans."""
    return _ROLE.sub(r"`\1`", text).replace("``", "`")


def _cell(text: str) -> str:
    return _docstring(text).replace("\n", " ").replace("|", "\\|")


# -- the command ------------------------------------------------------------------------


def outputs() -> dict[Path, str]:
    """Each generated file and the text it must have."""
    schema = build_schema()
    return {SCHEMA: schema_text(schema), DOC: render(schema)}


def main(argv: list[str] | None = None) -> int:
    """Write both files, or with ``--check`` report the ones that differ (exit 1)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="write nothing; fail on drift")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path.relative_to(ROOT))
            continue
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(f"{path} differs from the manifest's models: {FIX}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
