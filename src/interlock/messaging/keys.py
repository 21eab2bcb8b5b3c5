"""Messaging keys per integration: issued, sealed, rolled over with an overlap, published.

Each messaging integration, and each event-streaming integration that
declares ``encrypt: payload`` (:func:`keyed_spec`), has a **signing key** for
its producer (the integration's client; ``spec.signing_algorithm``) and an
**encryption key** for each consumer (``spec.key_algorithm``). The rollover rules are those of
:mod:`interlock.oauth.signing_keys`, with a message's life in place of a token's:

* a new key is **published** (:meth:`MessagingKeys.jwks`, and to consumers'
  verification and decryption key sets) ``publish_ahead`` before it is used:
  the producer signs with it, or encrypts to it, only once it has activated;
* the key it replaces stays usable for **opening** until every message sealed
  with it has expired and every dead letter sealed with it has reached its
  retention (:func:`kept_for`, ``ttl`` plus retention, plus ``leeway`` after
  the successor activates: an operator holding the dead-letter role can
  still show one), then it is
  deleted (:meth:`MessagingKeys.ensure`), and messages sealed with it no
  longer open;
* keys rotate on a schedule (``spec.key_rotation``) or when the manifest
  changes the algorithm, through :meth:`MessagingKeys.ensure`, or at once
  with :meth:`MessagingKeys.rotate`.

The first key of a party signs at once (no message needs the overlap). Private
JWKs are sealed by the keyring with additional data binding integration, party
and kid, so a sealed key copied to another row does not open. Rows are cached
for :data:`ROWS_TTL` seconds and each private key is unsealed once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal, Protocol

from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import Engine, delete, select, update

from interlock.clock import Clock, utc_now
from interlock.config.manifest import Integration, Manifest
from interlock.config.messaging import DeadLetterPolicy
from interlock.crypto import Keyring
from interlock.crypto.jose import (
    PublicKey,
    SigningKey,
    generate_signing_key,
    import_public_jwk,
    load_private_jwk,
    private_jwk,
)
from interlock.errors import NotFoundError, did_you_mean
from interlock.messaging.envelope import KEY_ALGORITHMS, SIGNING_ALGORITHMS, RecipientKey, SignerKey
from interlock.messaging.tables import MessagingKeyRow
from interlock.store.base import as_utc, table_of

__all__ = [
    "PARTY_MEMBER",
    "ROWS_TTL",
    "KeyInfo",
    "KeyedSpec",
    "MessagingKeys",
    "kept_for",
    "keyed_spec",
]

_TABLE: Final = table_of(MessagingKeyRow)
# As for the OAuth keys: a rotation elsewhere publishes the new key publish_ahead
# before it is used, so a few seconds of staleness never makes a producer use a key
# its consumers do not hold yet.
ROWS_TTL: Final = 5.0
#: The JWKS member naming the party a key belongs to (producer or consumer client):
#: RFC 7517 §4 allows additional members; the name is prefixed against collisions.
PARTY_MEMBER: Final = "interlock_party"
# An integration gone from the manifest: its keys are kept as long as a message can live.
_LONGEST_TTL: Final = timedelta(days=14)

Use = Literal["sig", "enc"]


class KeyedSpec(Protocol):
    """What the keys need of an integration's section (``messaging:`` or sealed ``events:``)."""

    @property
    def consumers(self) -> Iterable[str]:
        """The consumers, each with an encryption key."""
        ...

    @property
    def key_algorithm(self) -> str:
        """The consumers' key algorithm."""
        ...

    @property
    def signing_algorithm(self) -> str:
        """The producer's signing algorithm."""
        ...

    @property
    def key_rotation(self) -> timedelta:
        """How often keys rotate."""
        ...

    @property
    def ttl(self) -> timedelta:
        """How long a message lives."""
        ...

    @property
    def dead_letter(self) -> DeadLetterPolicy:
        """How long its dead letters are kept."""
        ...


def keyed_spec(flow: Integration) -> KeyedSpec | None:
    """The section whose keys the integration needs: messaging, or events that are sealed."""
    if flow.messaging is not None:
        return flow.messaging
    if flow.events is not None and flow.events.encrypt is not None:
        return flow.events
    return None


@dataclass(frozen=True)
class KeyInfo:
    """One key as ``interlock messaging keys list`` shows it (no key material)."""

    integration: str
    party: str
    use: Use
    kid: str
    alg: str
    created_at: datetime
    activates_at: datetime
    retires_at: datetime | None

    def state(self, now: datetime) -> Literal["pending", "in use", "retiring", "retired"]:
        """Where the key is in its life at ``now``."""
        if self.retires_at is not None and self.retires_at <= now:
            return "retired"
        if self.activates_at > now:
            return "pending"
        return "retiring" if self.retires_at is not None else "in use"


class MessagingKeys:
    """The messaging integrations' keys in the store, sealed by ``keyring``."""

    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        *,
        now: Clock = utc_now,
        publish_ahead: timedelta = timedelta(minutes=15),
        leeway: timedelta = timedelta(minutes=5),
    ) -> None:
        """Bind to the store; nothing is created until :meth:`ensure` or :meth:`rotate`.

        ``leeway`` must be at least the consumers' clock leeway: a retired key
        is deleted only once no message it sealed can still be accepted.
        """
        self._engine = engine
        self._keyring = keyring
        self._now = now
        self.publish_ahead = publish_ahead
        self.leeway = leeway
        self._rows_cache: list[Any] = []
        # The cached rows by (integration, party, use): a message's key look-up reads its
        # own party's few rows, not every integration's.
        self._by_owner: dict[tuple[str, str, str], list[Any]] = {}
        self._rows_read = float("-inf")
        self._private: dict[str, Any] = {}
        self._public: dict[str, PublicKey] = {}
        self._lock = threading.Lock()

    # --- issuing and rotating --------------------------------------------------------

    def ensure(self, manifest: Manifest) -> list[str]:
        """Create missing keys, rotate due ones, retire orphans, delete retired ones.

        For every messaging integration of ``manifest``, and every sealed
        event-streaming one (:func:`keyed_spec`): a signing key for its
        producer and an encryption key per consumer; a key older than
        ``spec.key_rotation``, or of another algorithm than the manifest's, is
        rotated. Keys of parties no longer in the manifest retire once their
        messages can have expired. Returns the kids created.
        """
        now = self._now()
        rows = self._rows()
        wanted: dict[tuple[str, str, str], tuple[str, KeyedSpec]] = {}
        for name, flow in manifest.integrations.items():
            spec = keyed_spec(flow)
            if spec is not None:
                for party, key_use, alg in _parties(spec, flow.client):
                    wanted[(name, party, key_use)] = (alg, spec)
        created = []
        for (integration, party, use), (alg, spec) in wanted.items():
            current = [
                r for r in rows if _owner(r) == (integration, party, use) and r.retires_at is None
            ]
            newest = max(current, key=lambda r: as_utc(r.activates_at), default=None)
            if newest is None:
                only_after = None
            elif newest.alg != alg or as_utc(newest.activates_at) <= now - spec.key_rotation:
                only_after = newest.kid
            else:
                continue
            kid = self._issue(
                integration, party, use, alg, ttl=kept_for(spec), only_after=only_after
            )
            if kid is not None:
                created.append(kid)
        self._retire_orphans(manifest, rows, wanted, now)
        self._purge(now)
        self._forget()
        return created

    def rotate(
        self, integration: str, spec: KeyedSpec, producer: str, party: str | None = None
    ) -> list[str]:
        """Publish successors now (used after ``publish_ahead``); returns their kids.

        ``party`` None: every key of the integration; otherwise only that
        party's (the producer's signing key, or a consumer's encryption key).
        """
        parties = _parties(spec, producer)
        if party is not None:
            known = [p[0] for p in parties]
            parties = [p for p in parties if p[0] == party]
            if not parties:
                raise NotFoundError(
                    f"{party!r} is neither the producer nor a consumer of {integration!r}"
                    f"{did_you_mean(party, known)}"
                )
        kids = []
        for name, use, alg in parties:
            kid = self._issue(integration, name, use, alg, ttl=kept_for(spec), only_after=None)
            if kid is not None:
                kids.append(kid)
        self._forget()
        return kids

    def _issue(
        self,
        integration: str,
        party: str,
        use: str,
        alg: str,
        *,
        ttl: timedelta,
        only_after: str | None,
    ) -> str | None:
        """Insert a key for the party and retire the ones it replaces; returns its kid.

        The new key is used after ``publish_ahead``, and its predecessors retire
        ``ttl`` plus ``leeway`` after that; a party with no key gets one used at
        once. With ``only_after`` (the scheduled rotation), only if that key is
        still current: replicas running :meth:`ensure` at once race on one
        UPDATE, and only its winner inserts.
        """
        key = _generate(use, alg)  # before the transaction: an RSA key takes a while
        now = self._now()
        kid = str(key.kid)
        owner = (
            (_TABLE.c.integration == integration)
            & (_TABLE.c.party == party)
            & (_TABLE.c.key_use == use)
        )
        current = owner & _TABLE.c.retires_at.is_(None)
        with self._engine.begin() as connection:
            live = [r for r in connection.execute(select(_TABLE).where(owner)) if not _gone(r, now)]
            activates = now + self.publish_ahead if live else now
            retire_old = activates + ttl + self.leeway
            if only_after is not None:
                won = connection.execute(
                    update(_TABLE)
                    .where(current, _TABLE.c.kid == only_after)
                    .values(retires_at=retire_old)
                ).rowcount
                if not won:
                    return None
            connection.execute(update(_TABLE).where(current).values(retires_at=retire_old))
            public = key.as_dict(private=False) | {"kid": kid, "alg": alg, "use": use}
            connection.execute(
                _TABLE.insert().values(
                    kid=kid,
                    integration=integration,
                    party=party,
                    key_use=use,
                    alg=alg,
                    public_jwk=json.dumps(public),
                    private_jwk=self._keyring.seal(private_jwk(key), _aad(integration, party, kid)),
                    created_at=now,
                    activates_at=activates,
                    retires_at=None,
                )
            )
        self._forget()
        return kid

    def _retire_orphans(
        self,
        manifest: Manifest,
        rows: list[Any],
        wanted: dict[tuple[str, str, str], tuple[str, KeyedSpec]],
        now: datetime,
    ) -> None:
        for row in rows:
            if row.retires_at is not None or _owner(row) in wanted:
                continue
            flow = manifest.integrations.get(row.integration)
            spec = keyed_spec(flow) if flow is not None else None
            ttl = kept_for(spec) if spec is not None else _LONGEST_TTL
            with self._engine.begin() as connection:
                connection.execute(
                    update(_TABLE)
                    .where(_TABLE.c.kid == row.kid, _TABLE.c.retires_at.is_(None))
                    .values(retires_at=now + ttl + self.leeway)
                )

    def _purge(self, now: datetime) -> None:
        # Compared in Python: SQLite keeps timestamps as text without a zone.
        gone = [r.kid for r in self._rows() if _gone(r, now)]
        if gone:
            with self._engine.begin() as connection:
                connection.execute(delete(_TABLE).where(_TABLE.c.kid.in_(gone)))

    # --- using ----------------------------------------------------------------------

    def signer(self, integration: str, producer: str) -> SignerKey:
        """The producer's private signing key to use now."""
        row = self._in_use(integration, producer, "sig")
        return SignerKey(kid=row.kid, alg=row.alg, key=self._unseal(row))

    def verification_keys(self, integration: str, producer: str) -> dict[str, Any]:
        """The producer's published public keys by kid: pending, in use and retiring."""
        return {r.kid: self._public_key(r) for r in self._live(integration, producer, "sig")}

    def recipients(self, integration: str, consumers: Sequence[str]) -> list[RecipientKey]:
        """The encryption key to use now for each consumer (public)."""
        result = []
        for consumer in consumers:
            row = self._in_use(integration, consumer, "enc")
            result.append(RecipientKey(row.kid, row.alg, consumer, self._public_key(row)))
        return result

    def decryption_keys(self, integration: str, consumer: str) -> dict[str, Any]:
        """The consumer's private keys by kid, every one not retired (pending ones too)."""
        return {r.kid: self._unseal(r) for r in self._live(integration, consumer, "enc")}

    def jwks(self, integration: str) -> dict[str, Any]:
        """The integration's public keys (RFC 7517 §5), each naming its party; no private part."""
        now = self._now()
        keys = [
            json.loads(r.public_jwk) | {PARTY_MEMBER: r.party}
            for r in self._rows()
            if r.integration == integration and not _gone(r, now)
        ]
        return {"keys": keys}

    def rows(self, integration: str | None = None) -> list[KeyInfo]:
        """Every key (of ``integration``), oldest first, without key material."""
        return [
            KeyInfo(
                integration=r.integration,
                party=r.party,
                use=r.key_use,
                kid=r.kid,
                alg=r.alg,
                created_at=as_utc(r.created_at),
                activates_at=as_utc(r.activates_at),
                retires_at=as_utc(r.retires_at) if r.retires_at is not None else None,
            )
            for r in self._rows()
            if integration is None or r.integration == integration
        ]

    def _live(self, integration: str, party: str, use: str) -> list[Any]:
        now = self._now()
        self._cached_rows()
        return [r for r in self._by_owner.get((integration, party, use), ()) if not _gone(r, now)]

    def _in_use(self, integration: str, party: str, use: str) -> Any:
        now = self._now()
        active = [r for r in self._live(integration, party, use) if as_utc(r.activates_at) <= now]
        if not active:
            what = "signing" if use == "sig" else "encryption"
            raise NotFoundError(
                f"no {what} key in use for {party!r} in {integration!r}; "
                "ensure the integration's messaging keys"
            )
        # The successor of the others (not retiring), then the newest: a rotation that
        # supersedes a key still pending leaves two keys activating at the same time.
        return max(active, key=lambda r: (r.retires_at is None, as_utc(r.activates_at)))

    def _unseal(self, row: Any) -> Any:
        key = self._private.get(row.kid)
        if key is None:
            opened = self._keyring.open(row.private_jwk, _aad(row.integration, row.party, row.kid))
            key = load_private_jwk(opened)
            with self._lock:
                self._private[row.kid] = key
        return key

    def _public_key(self, row: Any) -> PublicKey:
        key = self._public.get(row.kid)
        if key is None:
            key = import_public_jwk(json.loads(row.public_jwk))
            with self._lock:
                self._public[row.kid] = key
        return key

    def in_memory(self) -> bool:
        """Whether the key rows are cached: the next call reads no store (no I/O to wait for).

        Unsealing a key is local CPU work (the keyring), so callers on an event
        loop may then call :meth:`signer`, :meth:`recipients` and the key sets
        inline instead of in a thread.
        """
        return time.monotonic() - self._rows_read < ROWS_TTL

    def _cached_rows(self) -> list[Any]:
        if time.monotonic() - self._rows_read >= ROWS_TTL:
            rows = self._rows()
            with self._lock:
                by_owner: dict[tuple[str, str, str], list[Any]] = {}
                for row in rows:  # oldest first, as read
                    by_owner.setdefault(_owner(row), []).append(row)
                self._rows_cache, self._by_owner = rows, by_owner
                self._rows_read = time.monotonic()
                live = {row.kid for row in rows}
                self._private = {k: v for k, v in self._private.items() if k in live}
                self._public = {k: v for k, v in self._public.items() if k in live}
        return self._rows_cache

    def _forget(self) -> None:
        with self._lock:
            self._rows_read = float("-inf")

    def _rows(self) -> list[Any]:
        with self._engine.connect() as connection:
            return list(connection.execute(select(_TABLE).order_by(_TABLE.c.activates_at)))


def kept_for(spec: KeyedSpec) -> timedelta:
    """How long a replaced key keeps opening: message life plus dead-letter life.

    A message may be dead-lettered as late as its expiry (``ttl`` after it was
    sealed, the broker's own expiry included) and is then kept for the
    retention, so the two add up; the longer of them is not enough.
    """
    return spec.ttl + spec.dead_letter.retention


def _parties(spec: KeyedSpec, producer: str) -> list[tuple[str, Use, str]]:
    """(party, use, algorithm) of every key the integration needs."""
    keys: list[tuple[str, Use, str]] = [(producer, "sig", spec.signing_algorithm)]
    keys += [(consumer, "enc", spec.key_algorithm) for consumer in spec.consumers]
    return keys


def _generate(use: str, alg: str) -> SigningKey:
    if use == "sig":
        if alg not in SIGNING_ALGORITHMS:
            raise ValueError(f"signing algorithm {alg!r} is not allowed for messages")
        return generate_signing_key(alg)
    if alg not in KEY_ALGORITHMS:
        raise ValueError(f"key algorithm {alg!r} is not allowed for messages")
    key: SigningKey = (
        ECKey.generate_key("P-256", private=True)
        if alg == "ECDH-ES+A256KW"
        else RSAKey.generate_key(3072, private=True)  # NIST SP 800-57: 128-bit strength
    )
    key.ensure_kid()
    return key


def _owner(row: Any) -> tuple[str, str, str]:
    return (row.integration, row.party, row.key_use)


def _gone(row: Any, now: datetime) -> bool:
    return row.retires_at is not None and as_utc(row.retires_at) <= now


def _aad(integration: str, party: str, kid: str) -> bytes:
    return f"interlock:messaging:key:{integration}:{party}:{kid}".encode()
