# The two commands of the README: `make demo` and `make test`.
# Both install exactly the versions locked in uv.lock (with their hashes) into
# .venv, re-syncing whenever pyproject.toml or uv.lock changes, so they work the
# same on every fresh machine. uv itself is bootstrapped by pip into .venv-tools
# from requirements/uv.txt, hash-checked. docs/dependencies.md says why and how.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TOOLS  := .venv-tools
UV     := $(TOOLS)/bin/uv
# Use $(PYTHON), never an interpreter uv would download.
export UV_PYTHON_DOWNLOADS := never
SYNC   := $(UV) sync --quiet --locked --all-extras --python $(PYTHON)
# sslyze (the TLS posture test) pins cryptography<47 and needs nassl: it gets a
# venv of its own, never the project's. The test finds it at .venv-sslyze/bin/sslyze.
SSLYZE_VENV  := .venv-sslyze
SSLYZE_STAMP := $(SSLYZE_VENV)/.installed
# The lowest versions pyproject.toml admits (requirements/lowest.txt): proof that
# every floor is a version the tests pass on.
LOWEST       := .venv-lowest
LOWEST_STAMP := $(LOWEST)/.installed
# The whole suite but the gateway's own end-to-end tests (70 s on two workers, 117 s on
# one; the SDK and CLI suites still drive a real gateway): the full suite passed when
# the floors were set. Edge mode's tests (tests/gateway/edge) still run.
LOWEST_TESTS := tests --ignore-glob='tests/gateway/test_*.py'

.PHONY: check demo test lint typecheck deps scan softhsm chromium nginx sshd bouncycastle unit fast \
        lowest clean install tools \
        lock sbom bench-env bench manifest-docs drift

install: $(STAMP)

$(UV): requirements/uv.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Interlock needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
	  --only-binary :all: --require-hashes -r requirements/uv.txt
	@touch $(UV)

$(STAMP): pyproject.toml uv.lock $(UV)
	$(SYNC)
	@touch $(STAMP)

tools: $(SSLYZE_STAMP) softhsm chromium nginx sshd bouncycastle

$(SSLYZE_STAMP): requirements/sslyze.txt $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(SSLYZE_VENV)
	$(UV) pip sync --quiet --python $(SSLYZE_VENV)/bin/python --require-hashes requirements/sslyze.txt
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

# The same walkthrough with nginx carrying the bytes (docs/edge.md; nginx: make nginx).
.PHONY: demo-edge
demo-edge: $(STAMP)
	$(BIN)/interlock demo examples/interlock.yaml --edge

test: lint typecheck manifest-drift deps scan check unit lowest

# The manifest's JSON Schema (src/interlock/config/manifest.schema.json) and
# docs/manifest.md, generated from its models; `manifest-drift` fails when the committed ones
# differ from what the models generate and says to run `make manifest-docs`.
manifest-docs: $(STAMP)
	$(BIN)/python tools/manifest_reference.py

manifest-drift: $(STAMP)
	$(BIN)/python tools/manifest_reference.py --check

# ruff, and the layers of docs/architecture.md as an import contract (pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy --strict src tools tests

# The lock matches pyproject.toml; every import is declared (deptry); no known
# vulnerability in the locked set or at the floors without a dated waiver
# (requirements/waivers.toml). An unreachable advisory service is reported, not fatal.
deps: $(STAMP)
	$(UV) lock --check --quiet
	$(BIN)/deptry src
	$(UV) export --quiet --frozen --all-extras --all-groups --no-emit-project \
	  --format requirements.txt -o $(VENV)/locked.txt
	$(BIN)/python tools/audit_dependencies.py $(VENV)/locked.txt requirements/lowest.txt

# Leaked secrets and insecure switches fail the build (docs/scan.md).
scan: $(STAMP)
	$(BIN)/interlock scan .

# The security checklist on the example, configuration mode (docs/check.md): an
# unwaived high-severity failure fails the build.
check: $(STAMP)
	$(BIN)/interlock check --manifest examples/interlock.yaml --fail-on high

# Chromium, headless, renders the HTML Art. 30 register in its test (docs/privacy.md).
# Installed from Debian when missing and we are root (as CI is); otherwise that test
# skips, or fails under INTERLOCK_REQUIRE_SERVICES=1.
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium; \
	  else echo "chromium is not installed (apt-get install chromium): the HTML register test will skip"; fi; }

# nginx (nginx-light: auth_request, ssl) and Caddy for the edge-mode tests (docs/edge.md), as above.
nginx:
	@{ command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; } && command -v caddy >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx-light caddy; \
	  else echo "nginx or caddy is not installed (apt-get install nginx-light caddy): edge tests will skip"; fi; }

# OpenSSH's server, the independent peer of the SFTP tests (tests/files/test_openssh.py).
sshd:
	@test -x /usr/sbin/sshd || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends openssh-server; \
	  else echo "openssh-server is not installed (apt-get install openssh-server): OpenSSH tests will skip"; fi; }

# Java and Bouncy Castle's S/MIME (bcmail), the independent peer of the AS2 compression
# tests (tests/files/test_as2_compression.py): Debian's OpenSSL has no zlib.
bouncycastle:
	@{ command -v java >/dev/null && test -f /usr/share/java/bcmail.jar \
	  && test -f /usr/share/java/javax.mail.jar; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends \
	      default-jre-headless libbcmail-java; \
	  else echo "Java or Bouncy Castle is not installed (apt-get install default-jre-headless libbcmail-java): AS2 compression peer tests will skip"; fi; }

# pytest-xdist workers: both cores of the 2-core machine. More did not pay on the AMD EPYC
# machine of 2026-12-06: clean-clone CI took 19 min 19 s with two (unit stage 10 min 44 s,
# lowest 7 min 25 s) and 19 min 4 s with three (10 min 40 s, 7 min 13 s); four once
# tripped a demo test's 120 s timeout under load. Each worker has a Redis database of its
# own (tests/conftest.py); PostgreSQL tests each get a fresh schema anyway.
WORKERS ?= 2
# Today's statement coverage of the package by the suite, rounded down (92.60% on
# 2026-12-05; code run only in subprocesses is not counted). A change that lowers it
# fails `make test`; raise the floor as coverage grows. It cost 8-11% of wall time.
COVERAGE_FLOOR := 92

unit: $(STAMP) $(SSLYZE_STAMP) softhsm chromium nginx sshd bouncycastle
	$(BIN)/pytest -n $(WORKERS) --cov=interlock --cov-report= --cov-fail-under=$(COVERAGE_FLOOR)

# The tests that need no server: no PostgreSQL, Redis or SoftHSM2, and no process
# started (the markers are inferred and checked in tests/conftest.py).
FAST_TESTS := -m "not postgres and not redis and not mariadb and not softhsm and not processes and not rabbitmq and not nats"
fast: $(STAMP)
	$(BIN)/pytest -q -n $(WORKERS) $(FAST_TESTS)

$(LOWEST_STAMP): requirements/lowest.txt $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(LOWEST)
	$(UV) pip sync --quiet --python $(LOWEST)/bin/python --require-hashes requirements/lowest.txt
	$(UV) pip install --quiet --python $(LOWEST)/bin/python --no-deps -e .
	@touch $(LOWEST_STAMP)

# Every direct dependency at its floor, then the tests (LOWEST_TESTS) on that set.
lowest: $(LOWEST_STAMP)
	$(LOWEST)/bin/python tools/check_floors.py
	$(LOWEST)/bin/pytest -q -p no:cacheprovider -n $(WORKERS) $(LOWEST_TESTS)

# Refresh every lock: uv.lock to the newest versions pyproject.toml admits, the lowest
# set, the sslyze venv and uv itself. Then run `make test` and commit them together.
lock: $(UV)
	$(UV) lock --upgrade
	$(UV) pip compile --quiet --upgrade --universal --generate-hashes --python-version 3.11 \
	  --custom-compile-command 'make lock' pyproject.toml --all-extras --group dev \
	  --resolution lowest-direct -o requirements/lowest.txt
	$(UV) pip compile --quiet --upgrade --universal --generate-hashes --python-version 3.11 \
	  --custom-compile-command 'make lock' requirements/sslyze.in -o requirements/sslyze.txt
	$(UV) pip compile --quiet --upgrade --universal --generate-hashes --python-version 3.11 \
	  --custom-compile-command 'make lock' requirements/uv.in -o requirements/uv.txt

# A CycloneDX 1.5 SBOM of what a server deployment runs: the locked set with every
# extra, without the dev and bench groups. uv's CycloneDX export is a preview
# feature; tests/tools/test_sbom.py validates its output against the 1.5 schema.
SBOM ?= sbom.cdx.json
sbom: $(UV)
	$(UV) export --quiet --frozen --all-extras --no-default-groups --preview-features sbom-export \
	  --format cyclonedx1.5 -o $(SBOM)
	@echo "wrote $(SBOM)"

# The benchmarks' peers (the bench group) added to .venv.
bench-env: $(UV)
	$(SYNC) --group bench
	@touch $(STAMP)

# Every benchmark script (or BENCH=oauth,limits), each figure reported through
# benchmarks/results.py; tools/bench_report.py merges them into benchmarks/results.json
# (a failed or skipped benchmark recorded as such) and generates docs/performance.md.
BENCH ?= all
bench: bench-env
	$(BIN)/python tools/bench_report.py --only $(BENCH)

clean:
	rm -rf $(VENV) $(TOOLS) $(SSLYZE_VENV) $(LOWEST) .pytest_cache .mypy_cache .ruff_cache \
	  .hypothesis .coverage .coverage.* $(SBOM)
