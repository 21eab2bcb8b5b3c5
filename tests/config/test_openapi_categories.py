"""import-openapi proposes data categories from field names (issue 19 item 4).

Proposals are written as ``x-data-category-proposed`` into the generated
request schema, one note line each; ``interlock validate`` reports them as
unconfirmed until the operator renames the key (or tags the field in the
route's ``field_categories``). A document's own ``x-data-category`` is kept.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from interlock.cli.main import app
from interlock.config.loader import check_manifest
from interlock.config.openapi import apply_import, convert_openapi, plan_import, read_openapi
from interlock.validation.schema import compile_schema
from tests.config.test_openapi_import import ERP_URL, MANIFEST, write

SPEC = """\
openapi: 3.1.0
info: {title: People, version: "1"}
paths:
  /contacts:
    post:
      security: [{auth: ["orders:write"]}]
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                order_ref: {type: string}
                email: {type: string, format: email}
                mobilePhone: {type: string}
                nickname: {type: string, x-data-category: user.name}
                x_internal: {type: string, x-vendor-note: dropped}
      responses:
        "201": {description: Created}
components:
  securitySchemes:
    auth:
      type: oauth2
      flows:
        clientCredentials:
          tokenUrl: https://erp.example.com/oauth/token
          scopes: {"orders:write": Change orders}
"""


def test_names_that_look_personal_get_a_proposal_and_a_located_note(tmp_path: Path) -> None:
    """email and mobilePhone are proposed; the API's own tag is kept; other x- keys dropped."""
    doc = read_openapi(write(tmp_path, "spec.yaml", SPEC))
    result = convert_openapi(doc, system="erp", system_url=ERP_URL, schema_check=compile_schema)
    [route] = result.routes
    properties = route["request_schema"]["properties"]
    assert properties["email"]["x-data-category-proposed"] == "user.contact.email"
    assert properties["mobilePhone"]["x-data-category-proposed"] == "user.contact.phone_number"
    assert properties["nickname"] == {"type": "string", "x-data-category": "user.name"}
    assert "x-data-category-proposed" not in properties["order_ref"]
    assert "x-vendor-note" not in properties["x_internal"]
    assert len(result.notes) == 2
    email_note = next(n for n in result.notes if "'email'" in n)
    assert email_note.startswith(f"{tmp_path / 'spec.yaml'}:14:")
    assert ": note: " in email_note
    assert "proposed data category user.contact.email" in email_note


def test_imported_proposals_are_unconfirmed_until_renamed(tmp_path: Path) -> None:
    """After the import validate warns 'unconfirmed'; renaming the key confirms the proposal."""
    manifest = write(tmp_path, "interlock.yaml", MANIFEST)
    spec = write(tmp_path, "spec.yaml", SPEC)
    assert apply_import(plan_import(spec, manifest, system="erp", integration="order-sync"))
    report = check_manifest(manifest)
    assert report.ok, [str(d) for d in report.errors]
    unconfirmed = [d for d in report.warnings if d.message.startswith("unconfirmed:")]
    assert {d.path.rsplit(".", 2)[-2] for d in unconfirmed} == {"email", "mobilePhone"}
    manifest.write_text(
        manifest.read_text().replace(
            "x-data-category-proposed: user.contact.email", "x-data-category: user.contact.email"
        )
    )
    after = check_manifest(manifest)
    remaining = [d.path for d in after.warnings if d.message.startswith("unconfirmed:")]
    assert len(remaining) == 1
    assert "mobilePhone" in remaining[0]
    # The confirmed phone number is not declared by the integration: warned as such.
    manifest.write_text(
        manifest.read_text().replace(
            "x-data-category-proposed: user.contact.phone_number",
            "x-data-category: user.contact.phone_number",
        )
    )
    final = check_manifest(manifest)
    [warning] = [d for d in final.warnings if "mobilePhone" in d.message]
    assert "does not declare user.contact.phone_number" in warning.message


def test_cli_prints_one_note_per_proposal(tmp_path: Path) -> None:
    """The command prints a located note line for each proposed category."""
    manifest = write(tmp_path, "interlock.yaml", MANIFEST)
    spec = write(tmp_path, "spec.yaml", SPEC)
    result = CliRunner().invoke(
        app,
        [
            *("import-openapi", str(spec), "--system", "erp", "--integration", "order-sync"),
            *("--manifest", str(manifest), "--dry-run"),
        ],
    )
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if ": note: " in line]
    assert len(notes) == 2
