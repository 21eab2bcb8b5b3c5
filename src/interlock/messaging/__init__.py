"""Secure messaging: sealed envelopes on RabbitMQ and NATS JetStream (docs/messaging.md).

A message of a ``type: messaging`` integration is a JSON payload signed by
the producer's key (JWS, RFC 7515) and encrypted to its consumers' keys (JWE,
RFC 7516), or signed with only its personal-data fields encrypted. The
protected headers carry the message id, integration, producer, issue and
expiry times. Consumers verify, decrypt, refuse expired and duplicate
messages, validate and minimise the payload and record an audit entry per
message; refused messages wait in a dead-letter queue, still sealed.

Modules:

* :mod:`~interlock.messaging.model` — the types every part shares, and the
  broker adapter protocol;
* :mod:`~interlock.messaging.envelope` — seal and open (joserfc);
* :mod:`~interlock.messaging.keys` — per-integration keys, sealed by the
  keyring, rotated with an overlap, published as JWKS;
* :mod:`~interlock.messaging.producer`, :mod:`~interlock.messaging.consumer`
  — the libraries services use; :mod:`~interlock.messaging.dead_letters` —
  list, show, replay and purge;
* :mod:`~interlock.messaging.rabbitmq`, :mod:`~interlock.messaging.nats` —
  the broker adapters (the ``messaging`` extra), chosen by
  :func:`~interlock.messaging.brokers.open_broker`.
"""
