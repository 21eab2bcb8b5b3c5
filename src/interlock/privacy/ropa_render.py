"""The Art. 30 register as JSON, Markdown and CSV (HTML: :mod:`interlock.privacy.ropa_html`).

JSON follows the JSON Schema shipped as ``ropa.schema.json`` next to this
module (:func:`json_schema`). CSV follows the column order of the ICO's
"Documentation template for controllers" (record of processing activities
sheet), with the Art. 6 / Art. 9 / Art. 10 columns and the Art. 30(1)(a)
contacts after it (docs/privacy.md).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from importlib import resources
from typing import TYPE_CHECKING, Any

from interlock.validation.csv_body import neutralise_formulas

if TYPE_CHECKING:
    from interlock.privacy.ropa import Contact, Record, Register

__all__ = [
    "CSV_COLUMNS",
    "json_schema",
    "register_rows",
    "to_csv",
    "to_json",
    "to_markdown",
]

SCHEMA_ID = "https://interlock.example/schemas/ropa-1.json"


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of :func:`to_json`'s output."""
    text = resources.files("interlock.privacy").joinpath("ropa.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def to_json(register: Register) -> dict[str, Any]:
    """The register as a JSON value (see :func:`json_schema`)."""
    return {
        "$schema": SCHEMA_ID,
        "generated_at": register.generated_at.isoformat(),
        "manifest": register.manifest,
        "records": [_record_json(r) for r in register.records],
    }


def _record_json(record: Record) -> dict[str, Any]:
    body = asdict(record)
    for recipient in body["recipients"]:
        # Only where a transfer covers the recipient: every other recipient keeps the
        # shape registers had before the safeguard was recorded.
        if recipient["safeguard"] is None:
            del recipient["safeguard"]
    body["special_categories"] = record.special
    body["article"] = record.article
    return body


def _contact(contact: Contact | None) -> str:
    if contact is None:
        return ""
    country = f" ({contact.country})" if contact.country else ""
    return f"{contact.name}{country}, {contact.contact}"


def _subjects(record: Record) -> str:
    return "; ".join(f"{c.name} ({c.key})" for c in record.data_subjects)


def _categories(record: Record) -> str:
    return "; ".join(
        f"{c.name} ({c.key})" + (f" [special: {c.special}]" if c.special else "")
        for c in record.data_categories
    )


def _recipients(record: Record) -> str:
    articles = {t.destination: t.article for t in record.transfers}
    return "; ".join(
        {"broker": "message broker ", "partner": "trading partner "}.get(r.kind, "")
        + r.name
        + (f", owner {r.owner}" if r.owner else "")
        + (f", located in {r.location}" if r.location else "")
        + (f", transfer under {r.safeguard}" if r.safeguard else "")
        + (f" ({articles[r.location]})" if r.safeguard and r.location in articles else "")
        for r in record.recipients
    )


def _transfers(record: Record) -> tuple[str, str]:
    countries = "; ".join(t.destination for t in record.transfers)
    safeguards = "; ".join(
        f"{t.safeguard} ({t.article})"
        + (f", {t.decision} of {t.adopted}" if t.decision else "")
        + (", DPF certified" if t.dpf_certified else "")
        for t in record.transfers
    )
    return countries or record.transfer_statement, safeguards or "not applicable"


def _measures(record: Record) -> str:
    return "; ".join(f"{m.description} [{m.configured_at}]" for m in record.measures)


def _legal_basis(record: Record) -> str:
    return f"{record.legal_basis} ({record.legal_basis_article})"


# ICO, "Documentation template for controllers", record of processing sheet,
# in its column order; then the lawful-basis and contact columns.
CSV_COLUMNS = (
    "Business function",
    "Purpose of processing",
    "Name and contact details of joint controller (if applicable)",
    "Categories of individuals",
    "Categories of personal data",
    "Categories of recipients",
    "Link to contract with processor",
    "Names of third countries or international organisations that personal data are "
    "transferred to (if applicable)",
    "Safeguards for exceptional transfers of personal data to third countries or "
    "international organisations (if applicable)",
    "Retention schedule (if possible)",
    "General description of technical and organisational security measures (if possible)",
    "Article 6 lawful basis for processing personal data",
    "Article 9 basis for processing special category data",
    "Article 10 basis for processing criminal offence data",
    "Controller",
    "Representative",
    "Data protection officer",
    "Role (Art. 30(1) controller / Art. 30(2) processor)",
)


def _csv_row(record: Record) -> tuple[str, ...]:
    countries, safeguards = _transfers(record)
    joint = record.other_party if record.role == "joint_controller" else None
    processor_of = record.other_party if record.role == "processor" else None
    return (
        record.integration,
        " ".join(record.purposes),
        joint or "",
        _subjects(record),
        _categories(record),
        _recipients(record),
        "",
        countries,
        safeguards,
        record.retention,
        _measures(record),
        _legal_basis(record),
        record.special_category_condition or "",
        record.criminal_data_basis or "",
        _contact(record.controller),
        _contact(record.representative),
        _contact(record.dpo),
        record.role + (f" on behalf of {processor_of}" if processor_of else ""),
    )


def to_csv(register: Register) -> str:
    """The register as CSV, one row per integration, ICO column order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for record in register.records:
        # The register is opened in a spreadsheet and its texts come from the
        # manifest: no cell may carry a live formula, in any dialect (CWE-1236).
        writer.writerow([neutralise_formulas(c) for c in _csv_row(record)])
    return out.getvalue()


def to_markdown(register: Register) -> str:
    """The register as Markdown, one section per integration."""
    lines = [
        "# Record of processing activities (GDPR Art. 30)",
        "",
        f"Generated {register.generated_at.isoformat()} from `{register.manifest}`.",
    ]
    for record in register.records:
        lines += ["", *_markdown_record(record)]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def register_rows(record: Record) -> tuple[tuple[str, str], ...]:
    """The record's fields as (label, text) pairs, in Art. 30(1) order (Markdown and HTML)."""
    countries, safeguards = _transfers(record)
    other = f" (other party: {record.other_party})" if record.other_party else ""
    return (
        ("Role", f"{record.role}{other}; record under Art. {record.article}"),
        ("Controller (Art. 30(1)(a))", _contact(record.controller)),
        ("Processor (Art. 30(2)(a))", _contact(record.processor) or "not applicable"),
        ("Representative (Art. 27)", _contact(record.representative) or "none"),
        ("Data protection officer", _contact(record.dpo) or "none"),
        ("Purposes (Art. 30(1)(b))", " ".join(record.purposes)),
        ("Legal basis (Art. 6)", _legal_basis(record)),
        ("Art. 9(2) condition", record.special_category_condition or "not applicable"),
        ("Art. 10 basis", record.criminal_data_basis or "not applicable"),
        ("Data subjects (Art. 30(1)(c))", _subjects(record)),
        ("Personal data (Art. 30(1)(c))", _categories(record)),
        ("Recipients (Art. 30(1)(d))", _recipients(record)),
        ("Transfers (Art. 30(1)(e))", record.transfer_statement),
        ("Third countries", countries),
        ("Safeguards", safeguards),
        ("Retention (Art. 30(1)(f))", record.retention),
    )


def _markdown_record(record: Record) -> list[str]:
    flag = " **(special categories: Art. 9 / Art. 10)**" if record.special else ""
    out = [f"## {_md(record.integration)}{flag}", "", "| field | value |", "| --- | --- |"]
    out += [f"| {k} | {_md(v)} |" for k, v in register_rows(record)]
    out += ["", "Technical and organisational measures (Art. 30(1)(g), Art. 32):", ""]
    out += [f"- {_md(m.description)} (`{m.configured_at}`)" for m in record.measures]
    return out
