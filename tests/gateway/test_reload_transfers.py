"""A reload that would make a transfer unlawful is refused; the old manifest keeps serving.

Issue 19 item 2: the target system of order-sync moves from Germany to India,
and the transfer added for it claims adequacy, which India does not have (GDPR
Art. 45). Before, the reload was accepted: any country passed as adequate.
"""

from __future__ import annotations

from interlock.testing.gateway import Env, lines


def test_reload_refuses_a_location_that_breaks_the_transfer(env: Env) -> None:
    """The refusal is logged with the located reason; requests keep the old manifest."""
    original = env.manifest_path.read_text()
    token, _ = env.key(["orders.read"])
    head, rogue, tail = original.partition("  rogue: {")
    rogue_line, newline, rest = tail.partition("\n")
    moved = head + rogue + rogue_line.replace("location: DE", "location: IN") + newline + rest
    moved = moved.replace(
        "    target: rogue\n",
        "    target: rogue\n    transfer: {destination: IN, safeguard: adequacy}\n",
        1,
    )
    assert moved != original
    try:
        env.manifest_path.write_text(moved)
        assert env.gateway.reload() is False
        headers = {"Authorization": f"Bearer {token}"}
        assert env.request("GET", "/orders/1001", headers)[0] == 200
        refused = [
            line
            for line in lines(env)
            if line.get("event", "").startswith("manifest reload refused")
        ]
        assert any("IN has no EU adequacy decision" in str(line.get("error")) for line in refused)
    finally:
        env.manifest_path.write_text(original)
