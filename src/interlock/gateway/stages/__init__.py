"""Pipeline stages: small objects with one method, ``async __call__(ctx)``.

A stage either returns (the request goes on) or raises ``Refusal``. The order
is fixed in one place: :mod:`interlock.gateway.pipeline`.
"""
