"""Uncached ES256 access-token verification against the raw ``cryptography`` ECDSA verify.

The peer is the physical limit of the work: ``public_key.verify(der_signature,
signing_input, ECDSA(SHA256()))`` on the same tokens, with the signing input
and the DER signature prepared *outside* the timed loop — no parsing, no
base64, no claims at all. Ours is the gateway's ``AccessTokenVerifier`` with
``cache_size=0`` as ``interlock serve`` configures it (our issuer, the
manifest, the revocation mirror): header and payload parsed, every claim
checked (``typ``, ``iss``, ``aud``, ``exp``/``iat`` with leeway, ``sub ==
client_id``, ``jti``, revocation, the client and its scopes). The two are
timed interleaved (ours, peer, ours, ...) and the best pass of each is kept.

Run: ``.venv/bin/python benchmarks/oauth/verify_raw.py [--tokens 500] [--repeat 7]``
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

if __package__ in {None, ""}:  # run as a file: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import sandbox
from benchmarks.oauth.issuance import CLIENT, MANIFEST
from benchmarks.results import report
from interlock.config.loader import load_manifest
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.signing_keys import SigningKeys
from interlock.oauth.tokens import AccessTokenVerifier, TokenIssuer

ISSUER = "https://gateway.bench.test"


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def best_pass(task: Callable[[], object], seconds: float = 0.5) -> float:
    """Seconds of the fastest pass of ``task`` within about ``seconds``."""
    best = float("inf")
    stop = time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        task()
        best = min(best, time.perf_counter() - started)
        if time.perf_counter() > stop:
            return best


def main() -> None:
    """Issue tokens, check both sides accept them, time them interleaved, report the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with sandbox("interlock-verify-raw-") as box:
        manifest_path = box.work / "manifest.yaml"
        manifest_path.write_text(MANIFEST)
        manifest = load_manifest(manifest_path)
        keys = SigningKeys(box.deployment.engine, box.deployment.keyring, "ES256")
        keys.ensure()
        issuer = TokenIssuer(keys, ISSUER)
        tokens = [
            issuer.issue(CLIENT, frozenset({"orders.read"}), ISSUER).access_token
            for _ in range(args.tokens)
        ]
        (jwk,) = keys.jwks()["keys"]
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), b"\x04" + _b64(jwk["x"]) + _b64(jwk["y"])
        )
        prepared = []
        for token in tokens:
            signing_input, _, signature = token.rpartition(".")
            raw = _b64(signature)
            der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
            prepared.append((der, signing_input.encode("ascii")))
        verifier = AccessTokenVerifier(
            keys, ISSUER, manifest, revoked=RevokedTokens(box.deployment.engine), cache_size=0
        )
        algorithm = ec.ECDSA(hashes.SHA256())

        def ours(batch: Sequence[str] = tokens) -> None:
            verify = verifier.verify
            for token in batch:
                verify(token)

        def peer() -> None:
            verify = public_key.verify
            for der, data in prepared:
                verify(der, data, algorithm)

        ours()
        peer()  # both accept every token (either raises otherwise)
        ours_times, peer_times = [], []
        for _ in range(args.repeat):
            ours_times.append(best_pass(ours))
            peer_times.append(best_pass(peer))
        mine, theirs = min(ours_times), min(peer_times)
        print(
            f"uncached verify: ours {args.tokens / mine:9,.0f}/s ({mine / args.tokens * 1e6:6.1f} µs)"
            f"   raw ECDSA verify {args.tokens / theirs:9,.0f}/s"
            f" ({theirs / args.tokens * 1e6:6.1f} µs)"
        )
        report(
            "oauth-verify-raw",
            "verify-uncached-vs-raw-ecdsa",
            theirs / mine,
            target=0.9,
            peer=(
                "cryptography EllipticCurvePublicKey.verify(DER signature, signing input, "
                "ECDSA(SHA256)), both prepared outside the timed loop"
            ),
            note=f"{args.tokens} ES256 tokens, best pass of {args.repeat} interleaved repeats",
        )


if __name__ == "__main__":
    main()
