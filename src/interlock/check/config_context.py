"""What each configuration check reads: the manifest, one integration, and where things are."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from interlock.check.results import Finding, Location, Status
from interlock.config.manifest import Integration, Manifest, Route
from interlock.config.yaml_source import DocPath, YamlDocument

__all__ = ["Context", "no_routes"]


class Context:
    """What every item check needs: the manifest, the integration, and where things are."""

    def __init__(
        self,
        manifest: Manifest,
        name: str,
        source_map: YamlDocument | None,
        file: str,
        warnings: list[tuple[DocPath, str]],
        *,
        now: datetime,
    ) -> None:
        self.manifest = manifest
        self.now = now  # the run's one time: what has expired is decided against it
        self.warnings = warnings
        self.name = name
        self.flow: Integration = manifest.integrations[name]
        self._map = source_map
        self._file = file

    def at(self, *path: str | int) -> Location:
        """The manifest location of ``integrations.NAME.<path>`` (or its nearest ancestor)."""
        return self.locate(("integrations", self.name, *path))

    def locate(self, path: DocPath) -> Location:
        """The location of any manifest path; line 1 without a source map."""
        if self._map is None:
            return Location(self._file, 1, 1)
        line, column = self._map.position(path, key=True)
        return Location(self._file, line, column)

    def finding(  # noqa: PLR0917  (the parts of a finding)
        self,
        item: str,
        status: Status,
        reason: str,
        evidence: tuple[str, ...] | list[str] = (),
        location: Location | None = None,
        fix: str | None = None,
    ) -> Finding:
        return Finding(
            item=item,
            integration=self.name,
            status=status,
            reason=reason,
            evidence=tuple(evidence),
            location=location or self.at(),
            fix=fix,
        )

    def routes(self) -> Iterator[tuple[int, Route]]:
        return enumerate(self.flow.routes)


def no_routes(context: Context, item: str, what: str) -> Finding:
    return context.finding(
        item,
        "needs_evidence",
        f"the integration has no routes through the gateway, so Interlock cannot see {what}",
        ("routes: none",),
        context.at(),
        "declare its type: and follow the manual steps for that type, or add its routes",
    )
