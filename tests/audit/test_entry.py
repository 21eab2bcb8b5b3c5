"""The direct entry encoder writes exactly the canonical JSON of the entry's fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interlock.audit import AuditEntry, Outcome, Volume
from interlock.audit.canonical import canonical_json, utf8
from interlock.audit.entry import encode_entry, entry_fields
from interlock.audit.pseudonyms import Pseudonymiser

KEY = Pseudonymiser(b"k" * 32)
# Control characters, quotes, backslashes, non-ASCII, astral and U+2028: every escaping path.
_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
_short = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)
_detail = st.one_of(
    _text.map(lambda s: s[:500]), st.integers(-(2**53) + 1, 2**53 - 1), st.booleans()
)


@st.composite
def entries(draw: st.DrawFn) -> AuditEntry:
    """Valid entries over the whole range of every field."""
    return AuditEntry(
        time=draw(st.datetimes(timezones=st.just(UTC))),
        actor=draw(_short),
        action=draw(st.from_regex(r"^[a-z][a-z0-9_.-]{0,20}$", fullmatch=True)),
        integration=draw(st.none() | _short),
        source=draw(st.none() | _short),
        target=draw(st.none() | _short),
        data_categories=tuple(draw(st.lists(_short, max_size=4))),
        volume=Volume(records=draw(st.integers(0, 2**53 - 1)), bytes=draw(st.integers(0, 9))),
        outcome=Outcome(
            result=draw(st.sampled_from(["success", "partial_failure", "failure"])),
            status=draw(st.none() | st.integers(0, 999_999)),
        ),
        correlation_id=draw(st.none() | _short),
        reason=draw(st.none() | _text),
        details=draw(
            st.dictionaries(
                st.from_regex(r"^[a-z][a-z0-9_]{0,9}$", fullmatch=True), _detail, max_size=32
            )
        ),
        subjects=tuple(draw(st.lists(_text, max_size=3))),
        client_ip=draw(st.none() | _short),
    )


@settings(max_examples=100, deadline=None)
@given(entries(), st.booleans())
def test_direct_encoding_is_byte_identical_to_canonical_json(
    entry: AuditEntry, pseudonymise_ip: bool
) -> None:
    """``encode_entry`` == ``canonical_json(entry_fields(...))`` for any valid entry."""
    fields = entry_fields(entry, KEY, pseudonymise_ip=pseudonymise_ip)
    assert encode_entry(entry, KEY, pseudonymise_ip=pseudonymise_ip) == canonical_json(fields)


def test_the_encoding_of_a_known_entry_is_fixed() -> None:
    """A known-answer entry: sorted keys, no whitespace, JCS escapes, UTF-8 as itself."""
    entry = AuditEntry(
        time=datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        actor='client:"ä"\n',
        action="gateway.request",
        details={"route": "GET /x", "count": 3, "ok": True},
        outcome=Outcome(result="success", status=200),
        client_ip="192.0.2.1",
    )
    encoded = encode_entry(entry, KEY, pseudonymise_ip=False)
    assert (
        encoded
        == (
            '{"action":"gateway.request","actor":"client:\\"ä\\"\\n","client_ip":"192.0.2.1",'
            '"correlation_id":null,"data_categories":[],"details":{"count":3,"ok":true,'
            '"route":"GET /x"},"integration":null,"outcome":{"result":"success","status":200},'
            '"reason":null,"source":null,"subjects":[],"target":null,'
            '"time":"2025-01-02T03:04:05.000006Z","v":1,"volume":{"bytes":0,"records":0}}'
        ).encode()
    )
    assert json.loads(encoded)["actor"] == 'client:"ä"\n'


def test_a_lone_surrogate_is_refused() -> None:
    """Text that is not valid Unicode cannot become UTF-8: ValueError (the model refuses it too)."""
    with pytest.raises(ValueError, match="surrogate"):
        utf8('{"actor":"client:\ud800"}')


def _jwt() -> str:
    from joserfc import jws
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", private=True)
    return jws.serialize_compact(
        {"alg": "ES256"}, json.dumps({"sub": "x"}).encode(), key, algorithms=["ES256"]
    )


def test_credential_shaped_values_in_free_text_fields_never_reach_the_log() -> None:
    """The last line of defence: reason, details and correlation id are masked by shape."""
    from interlock.credentials.keyformat import new_key
    from interlock.crypto.pkix import new_private_key, private_key_pem

    api_key, jwt = new_key()[0], _jwt()
    pem = private_key_pem(new_private_key()).decode()
    entry = AuditEntry(
        actor="admin:alice",
        action="admin.keys.revoke",
        outcome=Outcome(result="failure", status=1),
        reason=f"no API key with id {api_key!r}",
        details={"command": f"keys revoke {api_key} {jwt}", "key": pem[:500], "n": 3},
        correlation_id=f"Bearer {jwt}"[:200],
    )
    encoded = encode_entry(entry, KEY).decode()
    for secret in (api_key, api_key.split("_")[2], jwt, jwt.rsplit(".", 1)[1], pem[40:80]):
        assert secret not in encoded
    fields = json.loads(encoded)
    assert fields["details"]["n"] == 3
    assert fields["details"]["command"].startswith("keys revoke [REDACTED]")
    assert fields["reason"] == "no API key with id '[REDACTED]'"


def test_ordinary_free_text_is_recorded_as_given() -> None:
    """Masking is by credential shape only: references and key=value text stay readable."""
    command = "secrets configure erp/api-key -o auth=secret://erp/hook -o token=none"
    entry = AuditEntry(
        actor="admin:alice",
        action="admin.secrets.configure",
        outcome=Outcome(result="success", status=0),
        reason="the access token: expired",
        details={"command": command},
    )
    assert entry.details["command"] == command
    assert entry.reason == "the access token: expired"
