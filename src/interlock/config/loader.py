"""Load a manifest and report *every* problem at once, each located.

Each system, role, client, integration and route is validated on its own, so a
mistake in one never hides a mistake in another; cross-entity rules then run on
what parsed. Output lines look like compiler diagnostics::

    interlock.yaml:12:14: systems.erp.url: upstream must use https:// ...
    interlock.yaml:30:9: warning: roles.reader.scopes[1]: scope 'x' is granted but ...
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from interlock.config.checks import Entities, Finding, PrivacyFacts, cross_check
from interlock.config.databases import DatabaseSystem
from interlock.config.explain import explain_validation_error, unknown_field
from interlock.config.files import Partner
from interlock.config.insecure import find_insecure_switches
from interlock.config.manifest import (
    NAME_PATTERN,
    OPERATOR_NAME_PATTERN,
    PATTERN_HELP,
    RULE_NAME_PATTERN,
    SCOPE_PATTERN,
    Client,
    Integration,
    Manifest,
    OperatorAccount,
    Organisation,
    Role,
    Route,
    SqlRule,
    System,
    TlsPolicy,
    TrustedIssuer,
)
from interlock.config.messaging import Broker
from interlock.config.yaml_source import (
    DocPath,
    YamlDocument,
    YamlSourceError,
    one_line,
    read_yaml,
)
from interlock.errors import ManifestError

__all__ = [
    "DeepCheck",
    "Diagnostic",
    "LoadedManifest",
    "ManifestReport",
    "check_manifest",
    "format_path",
    "load_manifest",
    "read_manifest",
]

_SECTIONS: Final[dict[str, type[BaseModel]]] = {
    "systems": System,
    "roles": Role,
    "clients": Client,
    "integrations": Integration,
    "trusted_issuers": TrustedIssuer,
    "rules": SqlRule,
    "brokers": Broker,
    "operators": OperatorAccount,
    "partners": Partner,
    "databases": DatabaseSystem,
}
_TOP_LEVEL: Final = frozenset({"version", "tls", "organisation", "shared_scopes", *_SECTIONS})
_NAME: Final = re.compile(NAME_PATTERN)
_RULE_NAME: Final = re.compile(RULE_NAME_PATTERN)
_SCOPE: Final = re.compile(SCOPE_PATTERN)
# Sections whose names follow another pattern than NAME_PATTERN.
_NAMES: Final = {
    "rules": (_RULE_NAME, RULE_NAME_PATTERN),
    "operators": (re.compile(OPERATOR_NAME_PATTERN), OPERATOR_NAME_PATTERN),
}
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Diagnostic:
    """One located problem in a manifest."""

    file: str
    line: int
    column: int
    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __post_init__(self) -> None:
        # One line: a key or value with a line break cannot add lines to the output.
        object.__setattr__(self, "path", one_line(self.path))
        object.__setattr__(self, "message", one_line(self.message))

    def __str__(self) -> str:
        label = "warning: " if self.severity == "warning" else ""
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {label}{where}{self.message}"


@dataclass(frozen=True)
class ManifestReport:
    """Outcome of checking a manifest: the model when valid, and every diagnostic."""

    manifest: Manifest | None
    errors: tuple[Diagnostic, ...]
    warnings: tuple[Diagnostic, ...]
    sha256: str = ""  # of the bytes checked ("" if the file could not be read)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors


DeepCheck = Callable[[Manifest, Path], Iterable[Finding]]
"""A check that needs more than the manifest's text (compiling its schemas, say)."""


@dataclass(frozen=True)
class LoadedManifest:
    """A validated manifest and the SHA-256 (hex) of the very bytes it was parsed from."""

    manifest: Manifest
    sha256: str


def load_manifest(path: Path, deep: DeepCheck | None = None) -> Manifest:
    """The validated manifest; :class:`ManifestError` carrying every error otherwise."""
    return read_manifest(path, deep).manifest


def read_manifest(path: Path, deep: DeepCheck | None = None) -> LoadedManifest:
    """:func:`load_manifest`, with the hash of the bytes read (the file may change after)."""
    report = check_manifest(path, deep)
    if report.manifest is None or report.errors:
        count = len(report.errors)
        first = str(report.errors[0]) if report.errors else f"{path}: invalid manifest"
        more = f" (and {count - 1} more; run `interlock validate {path}`)" if count > 1 else ""
        raise ManifestError(first + more, diagnostics=report.errors)
    return LoadedManifest(report.manifest, report.sha256)


def check_manifest(path: Path, deep: DeepCheck | None = None) -> ManifestReport:
    """Check ``path``; never raises for problems in the file's content.

    ``deep`` runs on a manifest that passed every other check, with the
    manifest's directory, and its findings are located like the others.
    """
    try:
        document = read_yaml(path)
    except YamlSourceError as exc:
        problem = exc.problem
        error = Diagnostic(str(path), problem.line, problem.column, "", problem.message)
        return ManifestReport(None, (error,), ())
    findings = [Finding(p.path, p.message, position=(p.line, p.column)) for p in document.problems]
    manifest = _Checker(document, findings).run()
    if manifest is not None and deep is not None:
        findings.extend(deep(manifest, path.parent))
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    return ManifestReport(
        manifest if not errors else None,
        tuple(_diagnostics(path, document, errors)),
        tuple(_diagnostics(path, document, warnings)),
        document.sha256,
    )


class _Checker:
    def __init__(self, document: YamlDocument, findings: list[Finding]) -> None:
        self.document = document
        self.findings = findings
        self.entities = Entities()

    def run(self) -> Manifest | None:
        data = self.document.data
        if not isinstance(data, dict):
            self.findings.append(Finding((), "a manifest is a mapping with version, systems, ..."))
            return None
        insecure = list(find_insecure_switches(data))
        self.findings.extend(insecure)
        data = _without(data, [f.path for f in insecure])
        for key in data:
            if key not in _TOP_LEVEL:
                self._unknown((key,), key, _TOP_LEVEL)
        version = data.get("version")
        if version is None:
            self.findings.append(Finding((), "missing required field 'version' (use: version: 1)"))
        elif type(version) is not int or version != 1:
            self.findings.append(Finding(("version",), f"unsupported version {version!r}; use 1"))
        tls = self._validate(TlsPolicy, _or_empty(data.get("tls")), ("tls",))
        shared = self._shared_scopes(data.get("shared_scopes"))
        entities = self._entities(data)
        entities.shared_scopes = frozenset(shared)
        if (raw_organisation := data.get("organisation")) is not None:
            entities.organisation = self._validate(
                Organisation, raw_organisation, ("organisation",)
            )
            entities.organisation_declared = True
        self.findings.extend(cross_check(entities))
        if self._has_errors() or tls is None:
            return None
        return Manifest(
            version=1,
            tls=tls,
            organisation=entities.organisation,
            systems=entities.systems,
            roles=entities.roles,
            clients=entities.clients,
            integrations={
                name: flow.model_copy(update={"routes": tuple(r for _, r in entities.routes[name])})
                for name, flow in entities.integrations.items()
            },
            trusted_issuers=entities.trusted_issuers,
            rules=entities.rules,
            shared_scopes=shared,
            brokers=entities.brokers,
            operators=entities.operators,
            partners=entities.partners,
            databases=entities.databases,
        )

    def _shared_scopes(self, raw: object) -> tuple[str, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.findings.append(Finding(("shared_scopes",), "shared_scopes is a list of scopes"))
            return ()
        scopes: list[str] = []
        for index, scope in enumerate(raw):
            if not isinstance(scope, str) or not _SCOPE.match(scope):
                self.findings.append(Finding(("shared_scopes", index), f"invalid scope {scope!r}"))
            elif scope in scopes:
                self.findings.append(
                    Finding(("shared_scopes", index), f"duplicate scope {scope!r}")
                )
            else:
                scopes.append(scope)
        return tuple(scopes)

    def _entities(self, data: Mapping[str, Any]) -> Entities:
        entities = self.entities
        for section, model in _SECTIONS.items():
            raw = data.get(section)
            entries = self._section(section, raw)
            entities.declared[section] = set(entries)
            for name, value in entries.items():
                if section == "integrations":
                    self._integration(entities, name, value)
                    continue
                parsed = self._validate(model, value, (section, name))
                if parsed is not None:
                    getattr(entities, section)[name] = parsed
                elif section == "roles":
                    entities.complete = False
        return entities

    def _section(self, section: str, raw: object) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.findings.append(Finding((section,), f"{section} must be a mapping of name: ..."))
            self.entities.broken.add(section)
            if section == "roles":
                self.entities.complete = False
            return {}
        entries: dict[str, Any] = {}
        pattern, kind = _NAMES.get(section, (_NAME, NAME_PATTERN))
        for name, value in raw.items():
            if not pattern.match(name):
                self.findings.append(
                    Finding(
                        (section, name),
                        f"invalid name {name!r}: {PATTERN_HELP[kind]}",
                        at_key=True,
                    )
                )
            entries[name] = value
        return entries

    def _integration(self, entities: Entities, name: str, value: object) -> None:
        at: DocPath = ("integrations", name)
        routes_raw: object = []
        if isinstance(value, dict):
            routes_raw = _or_empty(value.get("routes"), [])
            value = {k: v for k, v in value.items() if k != "routes"}
            entities.refs[name] = {
                k: v for k in ("source", "target", "client") if isinstance(v := value.get(k), str)
            }
            entities.privacy[name] = _privacy_facts(value)
        flow = self._validate(Integration, value, at)
        if not isinstance(routes_raw, list):
            self.findings.append(Finding((*at, "routes"), "routes must be a list"))
            routes_raw = []
        if not isinstance(value, dict) or not all(isinstance(r, dict) for r in routes_raw):
            entities.mentioned_scopes = None
        routes: list[tuple[int, Route]] = []
        for index, raw_route in enumerate(routes_raw):
            if entities.mentioned_scopes is not None and isinstance(raw_route, dict):
                entities.mentioned_scopes.add(str(raw_route.get("scope")))
            route = self._validate(Route, raw_route, (*at, "routes", index))
            if route is not None:
                routes.append((index, route))
        entities.routes[name] = routes
        if flow is not None:
            entities.integrations[name] = flow

    def _validate(self, model: type[M], value: object, at: DocPath) -> M | None:
        if not isinstance(value, dict):
            self.findings.append(Finding(at, f"expected a mapping of {model.__name__} fields"))
            return None
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            self.findings.extend(explain_validation_error(exc, at, model))
            return None

    def _unknown(self, path: DocPath, key: str, allowed: Iterable[str]) -> None:
        self.findings.append(Finding(path, unknown_field(key, allowed), at_key=True))

    def _has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.findings)


def _privacy_facts(raw: dict[str, Any]) -> PrivacyFacts:
    """An integration's special-category facts, from its raw mapping (parsed or not)."""
    categories = raw.get("data_categories")
    return PrivacyFacts(
        tuple(c if isinstance(c, str) else "" for c in categories)
        if isinstance(categories, list)
        else (),
        raw.get("special_category_condition") is not None,
        raw.get("criminal_data_basis") is not None,
    )


def _or_empty(value: object, empty: object = None) -> object:
    """``value``, or an empty mapping (or ``empty``) when the YAML left it blank (null)."""
    if value is not None:
        return value
    return {} if empty is None else empty


def _without(data: dict[str, Any], paths: list[DocPath]) -> dict[str, Any]:
    """A copy of ``data`` with the keys at ``paths`` removed."""
    if not paths:
        return data
    result = copy.deepcopy(data)
    for path in paths:
        parent: Any = result
        for part in path[:-1]:
            parent = parent[part]
        del parent[path[-1]]
    return result


def format_path(path: DocPath) -> str:
    """``("integrations", "x", "routes", 0, "scope")`` -> ``integrations.x.routes[0].scope``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _diagnostics(
    path: Path, document: YamlDocument, findings: list[Finding]
) -> Iterator[Diagnostic]:
    located = []
    for finding in findings:
        line, column = finding.position or document.position(finding.path, key=finding.at_key)
        located.append(
            Diagnostic(
                str(path),
                line,
                column,
                format_path(finding.path),
                finding.message,
                finding.severity,
            )
        )
    yield from sorted(set(located), key=lambda d: (d.line, d.column, d.path, d.message))
