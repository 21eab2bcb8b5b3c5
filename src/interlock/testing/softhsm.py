"""A throw-away SoftHSM2 for tests of the PKCS#11 keyring backend.

:func:`start` writes a ``softhsm2.conf`` whose token directory is in a temporary
directory, points ``SOFTHSM2_CONF`` at it and initialises tokens there with
``softhsm2-util``, each with a random user PIN and SO PIN written to 0600
files (never committed, never printed). SoftHSM reads its configuration and
lists its tokens once per process, when the module is first initialised, so
every token a test run needs is made up front, before the first session.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from interlock.crypto.keyfile import write_private_file
from interlock.crypto.pkcs11_kek import Pkcs11Config

__all__ = ["MODULE_ENV", "SoftHsm", "find_module", "start", "unavailable"]

#: Overrides where the SoftHSM2 module is looked for.
MODULE_ENV: Final = "INTERLOCK_TEST_PKCS11_MODULE"
_MODULES: Final = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/local/lib/softhsm/libsofthsm2.so"),
)


@dataclass(frozen=True)
class SoftHsm:
    """A SoftHSM2 configuration with initialised tokens and their PIN files."""

    module: Path
    directory: Path
    tokens: tuple[str, ...]

    def pin_file(self, token: str) -> Path:
        """The 0600 file holding ``token``'s user PIN."""
        return self.directory / f"{token}.pin"

    def config(self, token: str, lock_file: Path | None = None) -> Pkcs11Config:
        """A keyring configuration for ``token``."""
        return Pkcs11Config(self.module, token, self.pin_file(token), lock_file)


def find_module() -> Path | None:
    """The SoftHSM2 PKCS#11 module, or ``None`` when it is not installed."""
    named = os.environ.get(MODULE_ENV)
    candidates = (Path(named),) if named else _MODULES
    return next((path for path in candidates if path.is_file()), None)


def unavailable() -> str | None:
    """Why SoftHSM2 cannot be used here (a sentence), or ``None`` when it can."""
    if shutil.which("softhsm2-util") is None:
        return "softhsm2-util is not installed (Debian: apt-get install softhsm2, or make tools)"
    if find_module() is None:
        return f"the SoftHSM2 PKCS#11 module is not found; set {MODULE_ENV}"
    return None


def start(directory: Path, tokens: tuple[str, ...]) -> SoftHsm:
    """Configure SoftHSM2 under ``directory`` and initialise ``tokens`` there.

    Sets ``SOFTHSM2_CONF`` for this process (and its children); call before
    the module is first loaded.
    """
    module = find_module()
    util = shutil.which("softhsm2-util")
    if module is None or util is None:
        raise RuntimeError(unavailable() or "SoftHSM2 is not available")
    token_dir = directory / "tokens"
    token_dir.mkdir(mode=0o700, parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {token_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    hsm = SoftHsm(module, directory, tokens)
    for label in tokens:
        pin = secrets.token_hex(8)
        write_private_file(hsm.pin_file(label), pin.encode())
        # Arguments as a list, no shell. The PINs are on this test's command line
        # only: softhsm2-util has no other non-interactive way to take them.
        subprocess.run(  # noqa: S603
            [
                util,
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                pin,
                "--so-pin",
                secrets.token_hex(8),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return hsm
