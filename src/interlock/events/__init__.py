"""Event streaming: a schema registry with compatibility rules, validation, per-consumer copies.

An integration of ``type: event_streaming`` (docs/events.md) publishes events
of declared subjects. Each subject's JSON Schemas (2020-12) are versioned in
the registry, and a new version must be compatible with the previous ones
under the subject's mode (Confluent's semantics for JSON Schema):
:mod:`~interlock.events.compatibility`, :mod:`~interlock.events.registry`.
Producers validate before publishing; each consumer receives its own copy on
its own stream, cut to the fields and filtered to the events its grant allows,
so a sensitive field is never broadcast; consumers validate against the
writer's version and may read with their own.
"""
