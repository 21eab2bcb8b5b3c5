"""Checklist items answered by a broker of the manifest: messaging and event streaming alike.

The integration's broker (``messaging.broker`` or ``events.broker``) carries
its transport: TLS and its floor, the trust anchor, and how services
authenticate to it (a client certificate from Interlock's PKI, a password
from the vault). These items read it the same way for both types.
"""

from __future__ import annotations

from interlock.check.config_context import Context
from interlock.check.results import Finding
from interlock.config.messaging import Broker

__all__ = [
    "broker_auth",
    "broker_certificates",
    "broker_name",
    "broker_of",
    "broker_secrets",
    "broker_tls",
    "broker_tls_mitigation",
]


def broker_name(context: Context) -> str:
    """The broker the integration's messages or events travel through."""
    flow = context.flow
    section = flow.messaging or flow.events
    if section is None:
        raise ValueError(f"{context.name} has no broker")
    return section.broker


def broker_of(context: Context) -> Broker | None:
    """The broker's declaration (None when the manifest does not declare it)."""
    return context.manifest.brokers.get(broker_name(context))


def broker_auth(broker: Broker | None) -> list[str]:
    """How services authenticate to ``broker``: a client certificate, a password, or nothing."""
    if broker is None:
        return []
    methods = ["client certificate pki:auto"] if broker.client_cert else []
    if broker.credentials:
        methods.append(f"password {broker.credentials}")
    return methods


def broker_secrets(context: Context, keys: str) -> Finding:
    """``secrets_manager``: the broker credential by reference or PKI; ``keys`` says what else."""
    name = broker_name(context)
    auth = broker_auth(broker_of(context))
    evidence = [f"broker {name}: {', '.join(auth) or 'no credential'}", keys]
    if not auth:
        return context.finding(
            "secrets_manager",
            "needs_evidence",
            f"broker {name} declares no credential Interlock keeps",
            evidence,
            context.locate(("brokers", name)),
            "add credentials: secret://... or client_cert: pki:auto to the broker",
        )
    return context.finding(
        "secrets_manager",
        "pass",
        "the broker credential is a vault reference or a certificate from Interlock's PKI",
        evidence,
        context.locate(("brokers", name)),
    )


def broker_tls(context: Context, beyond: str) -> Finding:
    """``tls_required``: the broker's URL is TLS (validation refuses plain); ``beyond`` adds."""
    name = broker_name(context)
    broker = broker_of(context)
    floor = ((broker.tls if broker else None) or context.manifest.tls).min_version
    url = broker.url if broker is not None else "?"
    return context.finding(
        "tls_required",
        "pass",
        f"the broker is reached over TLS {floor} or later (plain amqp:// and nats:// are "
        f"refused by validation){beyond}",
        (f"broker {name}: {url} TLS >= {floor}",),
        context.locate(("brokers", name, "url")),
    )


def broker_certificates(context: Context) -> Finding:
    """``certificates_validated``: the broker is verified against a named anchor."""
    name = broker_name(context)
    broker = broker_of(context)
    anchor = broker.ca if broker is not None else "?"
    return context.finding(
        "certificates_validated",
        "pass",
        "the broker's certificate is verified against a named trust anchor (verification "
        "cannot be switched off in the manifest)",
        (f"broker {name}: trust anchor {anchor}",),
        context.locate(("brokers", name, "ca")),
    )


def broker_tls_mitigation(context: Context, item: str) -> Finding:
    """A type's "TLS to the broker" mitigation: TLS, and services authenticate to it."""
    name = broker_name(context)
    broker = broker_of(context)
    auth = broker_auth(broker)
    return context.finding(
        item,
        "pass" if auth else "fail",
        "TLS to the broker with its certificate verified, and the services authenticate"
        if auth
        else "TLS to the broker, but services do not authenticate to it",
        (f"broker {name}: {broker.url if broker else '?'}", *auth),
        context.locate(("brokers", name)),
        None if auth else "set client_cert: pki:auto or credentials: secret://... on the broker",
    )
