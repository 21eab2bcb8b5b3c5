"""What a manifest's routes compile into, checked before anything is served.

``interlock validate`` and ``interlock serve`` run this on a manifest that
passed every other check: each ``request_schema`` must compile as JSON
Schema 2020-12 and each ``xml.schema_file`` must load as an XSD, or the
problem is reported at that field (``FILE:LINE:COL: path: message``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from interlock.config.checks import Finding
from interlock.config.manifest import Manifest
from interlock.validation.schema import SchemaError, compile_schema

__all__ = ["route_artifacts"]


def route_artifacts(manifest: Manifest, manifest_dir: Path) -> Iterator[Finding]:
    """A finding for every request schema that does not compile and every XSD that does not load."""
    for name, flow in manifest.integrations.items():
        for index, route in enumerate(flow.routes):
            at = ("integrations", name, "routes", index)
            if route.request_schema is not None:
                try:
                    compile_schema(route.request_schema)
                except SchemaError as exc:
                    yield Finding((*at, "request_schema"), str(exc))
            if route.xml is not None and route.xml.schema_file is not None:
                # xmlschema (~0.5 s to import) only for manifests with an XSD.
                from interlock.validation.xml_body import load_xsd

                try:
                    load_xsd(manifest_dir / route.xml.schema_file)
                except ValueError as exc:
                    yield Finding((*at, "xml", "schema_file"), str(exc))
