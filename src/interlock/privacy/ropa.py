"""The Record of Processing Activities (GDPR Art. 30), built from the manifest.

One record per integration (a processing activity). Every Art. 30(1)(a)-(g)
field is taken from the manifest the gateway enforces; the technical and
organisational measures of point (g) are generated from the controls actually
configured for the integration (TLS floor, client authentication, scopes,
minimisation, validation, rate limits, replay protection, audit mode,
encryption at rest), each with a pointer to where it is configured, followed by
the measures the manifest declares in ``security_measures``. Where the
deployment is a processor for the flow, the record also names the Art. 30(2)
fields. Rendering is :mod:`interlock.privacy.ropa_render`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from fideslang.default_taxonomy import DEFAULT_TAXONOMY

from interlock.config.units import format_duration
from interlock.gdpr.adequacy import EEA, adequacy_decision
from interlock.gdpr.taxonomy import special_kind
from interlock.privacy.ropa_databases import consumer_recipients, database_measures
from interlock.privacy.ropa_files import files_measures, partner_of
from interlock.privacy.ropa_measures import Measure, measures
from interlock.privacy.ropa_messaging import (
    broker_location,
    events_measures,
    messaging_measures,
)

if TYPE_CHECKING:
    from interlock.config.manifest import Integration, Manifest, Party

__all__ = [
    "Category",
    "Contact",
    "Measure",
    "Recipient",
    "Record",
    "Register",
    "Transfer",
    "build_register",
    "declared_transfers",
    "legal_basis_article",
]

# GDPR Art. 6(1): the point of each legal basis.
_ARTICLE_6 = {
    "consent": "Art. 6(1)(a)",
    "contract": "Art. 6(1)(b)",
    "legal_obligation": "Art. 6(1)(c)",
    "vital_interests": "Art. 6(1)(d)",
    "public_task": "Art. 6(1)(e)",
    "legitimate_interests": "Art. 6(1)(f)",
}
_SAFEGUARD_ARTICLE = {
    "adequacy": "Art. 45",
    "SCC": "Art. 46(2)(c)",
    "BCR": "Art. 47",
    "derogation": "Art. 49(1)",
}


@dataclass(frozen=True)
class Contact:
    """A party of Art. 30(1)(a): name, contact details, country of establishment."""

    name: str
    contact: str
    country: str | None = None


@dataclass(frozen=True)
class Category:
    """A data category or data-subject category, with its fideslang name and description."""

    key: str
    name: str
    description: str
    special: Literal["art9", "art10"] | None = None


@dataclass(frozen=True)
class Recipient:
    """Who receives the data: a system, broker, partner or consumer (owner, location), or declared.

    ``safeguard``: the declared transfer's (``SCC``, ...) when the recipient is
    outside the EEA in the transfer's destination country (Art. 30(1)(e)).
    """

    name: str
    kind: Literal["system", "broker", "partner", "consumer", "declared"]
    configured_at: str
    location: str | None = None
    owner: str | None = None
    safeguard: str | None = None


@dataclass(frozen=True)
class Transfer:
    """A transfer to a third country (Art. 30(1)(e)) and the safeguard relied on."""

    destination: str
    safeguard: str
    article: str
    configured_at: str
    decision: str | None = None
    adopted: str | None = None
    scope: str | None = None
    dpf_certified: bool = False
    derogation: str | None = None


@dataclass(frozen=True)
class Record:
    """One processing activity: an integration, with every Art. 30(1) field."""

    integration: str
    role: str
    # Art. 30(1)(a); for a processor (Art. 30(2)(a)) the controller it acts for.
    controller: Contact
    # Art. 30(2)(a): this deployment's organisation, when it is the processor.
    processor: Contact | None
    representative: Contact | None
    dpo: Contact | None
    other_party: str | None
    purposes: tuple[str, ...]
    legal_basis: str
    legal_basis_article: str
    special_category_condition: str | None
    criminal_data_basis: str | None
    data_subjects: tuple[Category, ...]
    data_categories: tuple[Category, ...]
    recipients: tuple[Recipient, ...]
    transfers: tuple[Transfer, ...]
    # Art. 30(1)(e) in a sentence, never empty: "where applicable" is stated, not implied.
    transfer_statement: str
    retention: str
    measures: tuple[Measure, ...]

    @property
    def article(self) -> str:
        """The paragraph of Art. 30 this record follows: 30(2) for a processor's."""
        return "30(2)" if self.role == "processor" else "30(1)"

    @property
    def special(self) -> bool:
        """True when the activity processes Art. 9 or Art. 10 data (flagged in the register)."""
        return any(c.special is not None for c in self.data_categories)


@dataclass(frozen=True)
class Register:
    """The whole record: when it was generated, from which manifest, one record per integration."""

    generated_at: datetime
    manifest: str
    records: tuple[Record, ...]


def build_register(manifest: Manifest, *, source: str, kek_backend: str, now: datetime) -> Register:
    """The Art. 30 register of ``manifest`` (read from ``source``), generated at ``now``.

    ``kek_backend`` is the deployment's ``INTERLOCK_KEK_BACKEND`` (encryption at rest).
    Without an ``organisation`` block the controller is recorded as "not declared":
    ``validate`` already warns about it.
    """
    records = tuple(
        _record(manifest, name, integration, kek_backend)
        for name, integration in manifest.integrations.items()
    )
    return Register(generated_at=now, manifest=source, records=records)


def _contact(party: Party | None) -> Contact | None:
    return None if party is None else Contact(party.name, party.contact, party.country)


def _record(manifest: Manifest, name: str, flow: Integration, kek_backend: str) -> Record:
    org = manifest.organisation
    ours = _contact(org.controller) if org is not None else None
    ours = ours or Contact("not declared (organisation block missing)", "-")
    if flow.role == "processor" and flow.other_party is not None:
        # Art. 30(2)(a): the processor's record names the controller it acts for.
        controller, processor = Contact(flow.other_party, flow.other_party), ours
    else:
        controller, processor = ours, None
    recipients = _recipients(manifest, name, flow)
    return Record(
        integration=name,
        role=flow.role,
        controller=controller,
        processor=processor,
        representative=_contact(org.representative) if org is not None else None,
        dpo=_contact(org.dpo) if org is not None else None,
        other_party=flow.other_party,
        purposes=(flow.purpose,),
        legal_basis=flow.legal_basis,
        legal_basis_article=_ARTICLE_6[flow.legal_basis],
        special_category_condition=flow.special_category_condition,
        criminal_data_basis=flow.criminal_data_basis,
        data_subjects=tuple(_subject(key) for key in flow.data_subjects),
        data_categories=tuple(_category(key) for key in flow.data_categories),
        recipients=recipients,
        transfers=_transfers(name, flow),
        transfer_statement=_transfer_statement(flow, recipients),
        retention=format_duration(flow.retention),
        measures=measures(
            manifest,
            name,
            flow,
            kek_backend,
            (
                *messaging_measures(manifest, name, flow),
                *events_measures(manifest, name, flow),
                *files_measures(manifest, name, flow),
                *database_measures(manifest, name, flow),
            ),
        ),
    )


def _category(key: str) -> Category:
    name, description = _fideslang("data_category", key)
    return Category(key, name, description, special_kind(key))


def _subject(key: str) -> Category:
    name, description = _fideslang("data_subject", key)
    return Category(key, name, description)


def _fideslang(kind: Literal["data_category", "data_subject"], key: str) -> tuple[str, str]:
    for item in getattr(DEFAULT_TAXONOMY, kind):
        if item.fides_key == key:
            return str(item.name or key), str(item.description or "")
    return key, ""


def _recipients(manifest: Manifest, name: str, flow: Integration) -> tuple[Recipient, ...]:
    """Every recipient, each located one with the safeguard of a transfer to its country."""
    transfer = flow.transfer
    return tuple(
        replace(r, safeguard=transfer.safeguard)
        if transfer is not None and r.location == transfer.destination and r.location not in EEA
        else r
        for r in _recipients_of(manifest, name, flow)
    )


def _system(manifest: Manifest, name: str, configured_at: str) -> Recipient:
    system = manifest.systems.get(name)
    location, owner = (system.location, system.owner) if system is not None else (None, None)
    return Recipient(name, "system", configured_at, location, owner)


def _route_systems(manifest: Manifest, name: str, flow: Integration) -> tuple[Recipient, ...]:
    """The systems the routes give data to besides the target, each once, at its first route.

    A route's upstream receives the request, its caller (the integration's other
    system, :meth:`~interlock.config.manifest.Integration.caller_of`) the
    response: the receivers of the lineage, as ``validate`` checks them.
    """
    seen = {flow.target}
    found: list[Recipient] = []
    for index, route in enumerate(flow.routes):
        for system, at in (
            (route.upstream, f"routes[{index}].upstream"),
            (flow.caller_of(route.upstream), "source"),  # the caller is the target otherwise
        ):
            if system not in seen:
                seen.add(system)
                found.append(_system(manifest, system, f"integrations.{name}.{at}"))
    return tuple(found)


def _recipients_of(manifest: Manifest, name: str, flow: Integration) -> tuple[Recipient, ...]:
    systems = (
        _system(manifest, flow.target, f"integrations.{name}.target"),
        *_route_systems(manifest, name, flow),
    )
    declared = tuple(
        Recipient(text, "declared", f"integrations.{name}.recipients[{i}]")
        for i, text in enumerate(flow.recipients)
    )
    if flow.files is not None:
        # The trading partner sends or receives the files, under its agreement.
        partner, location, agreement = partner_of(manifest, flow)
        shown = f"{partner} (partner agreement {agreement})" if agreement else partner
        at = f"integrations.{name}.files.partner"
        return (*systems, Recipient(shown, "partner", at, location, None), *declared)
    if flow.database is not None:
        # Each consuming client reads the data through its own views.
        consumers = tuple(
            Recipient(shown, "consumer", at, location)
            for shown, at, location in consumer_recipients(manifest, name, flow)
        )
        return (*systems, *consumers, *declared)
    if flow.messaging is None and flow.events is None:
        return (*systems, *declared)
    # Messages and events rest on the broker until consumed (dead letters until they expire).
    broker, location, owner = broker_location(manifest, flow)
    section = "messaging" if flow.messaging is not None else "events"
    held = Recipient(broker, "broker", f"integrations.{name}.{section}.broker", location, owner)
    return (*systems, held, *declared)


def _transfers(name: str, flow: Integration) -> tuple[Transfer, ...]:
    t = flow.transfer
    if t is None:
        return ()
    decision = adequacy_decision(t.destination) if t.safeguard == "adequacy" else None
    article = _SAFEGUARD_ARTICLE[t.safeguard]
    if t.derogation is not None:
        article = (
            "Art. 49(1), second subparagraph"
            if t.derogation == "second_subparagraph"
            else f"Art. 49(1)({t.derogation})"
        )
    return (
        Transfer(
            destination=t.destination,
            safeguard=t.safeguard,
            article=article,
            configured_at=f"integrations.{name}.transfer",
            decision=decision.decision if decision is not None else None,
            adopted=decision.adopted.isoformat() if decision is not None else None,
            scope=decision.scope if decision is not None else None,
            dpf_certified=t.dpf_certified,
            derogation=t.derogation,
        ),
    )


def _transfer_statement(flow: Integration, recipients: tuple[Recipient, ...]) -> str:
    t = flow.transfer
    if t is not None:
        return (
            f"transfer to {t.destination} under {t.safeguard} ({_SAFEGUARD_ARTICLE[t.safeguard]})"
        )
    systems = [r for r in recipients if r.kind == "system"]
    noun = "systems" if len(systems) > 1 else "system"
    where = "; ".join(
        r.name + (f", located in {r.location}" if r.location else "") for r in systems
    )
    # validate refuses personal data to a non-EEA system without a declared transfer.
    return f"no transfer to a third country: recipient {noun} {where}"


def legal_basis_article(basis: str) -> str:
    """The point of GDPR Art. 6(1) a manifest ``legal_basis`` names (``contract``: 6(1)(b))."""
    return _ARTICLE_6[basis]


def declared_transfers(name: str, flow: Integration) -> tuple[Transfer, ...]:
    """Integration ``name``'s third-country transfer with its safeguard's article, if any."""
    return _transfers(name, flow)
