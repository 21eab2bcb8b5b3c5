# The two commands of the README: `make demo` and `make test`.
# Both create .venv when it is missing and (re)install the project into it
# whenever pyproject.toml changes, so they work on a fresh machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# sslyze (the TLS posture test) pins cryptography<47 and needs nassl: it gets a
# venv of its own, never the project's. The test finds it at .venv-sslyze/bin/sslyze.
SSLYZE_VENV  := .venv-sslyze
SSLYZE_STAMP := $(SSLYZE_VENV)/.installed
SSLYZE_SPEC  := sslyze>=6,<7

.PHONY: demo test lint typecheck scan softhsm unit clean install tools

install: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Interlock needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

tools: $(SSLYZE_STAMP) softhsm

$(SSLYZE_STAMP):
	$(PYTHON) -m venv $(SSLYZE_VENV)
	$(SSLYZE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check '$(SSLYZE_SPEC)'
	@touch $(SSLYZE_STAMP)

# SoftHSM2, the PKCS#11 token the HSM keyring tests create at run time (docs/hsm.md).
# Installed from Debian when missing and we are root (as CI is); otherwise those tests
# skip, or fail under INTERLOCK_REQUIRE_SERVICES=1.
softhsm:
	@command -v softhsm2-util >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends softhsm2; \
	  else echo "softhsm2 is not installed (apt-get install softhsm2): HSM tests will skip"; fi; }

demo: $(STAMP)
	$(BIN)/interlock demo examples/interlock.yaml

test: lint typecheck scan unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

# Leaked secrets and insecure switches fail the build (docs/scan.md).
scan: $(STAMP)
	$(BIN)/interlock scan .

unit: $(STAMP) $(SSLYZE_STAMP) softhsm
	$(BIN)/pytest

clean:
	rm -rf $(VENV) $(SSLYZE_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
