# Two entry points: `make demo` and `make test`. Both build .venv on first use and
# reuse it afterwards (the stamp file is newer than the lock file and pyproject.toml).
# .venv is installed from requirements/dev.lock: exact versions with hashes of the
# runtime dependencies plus the `dev` extra, for Python 3.11 on Linux x86_64.
# `make lock` refreshes the lock, `make audit` checks it for known vulnerabilities.
# See docs/development.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
LOCK := requirements/dev.lock
# Extra arguments for `make lock`, e.g. LOCK_ARGS=--upgrade (every package to its newest
# release) or LOCK_ARGS='--upgrade-package numpy'. Without them the pins already in the
# lock are kept and only what pyproject.toml changed is resolved anew.
LOCK_ARGS ?=

.PHONY: demo test lint format bench clean lock audit venv

# The bare virtualenv, without the project (lock and audit need only this).
venv:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)

$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Refresh the lock after a change to the dependencies in pyproject.toml. uv (no
# dependencies of its own) is installed into .venv on first use. uv keeps the pins it
# finds in the existing lock unless LOCK_ARGS says otherwise; the lock file is only
# replaced when its content changes (so .venv is not reinstalled for nothing).
lock: venv
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv
	test ! -f $(LOCK) || cp $(LOCK) $(LOCK).new
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes \
		--python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
		--custom-compile-command 'make lock' $(LOCK_ARGS) -o $(LOCK).new >/dev/null \
		|| { rm -f $(LOCK).new; exit 1; }
	if cmp -s $(LOCK).new $(LOCK); then rm $(LOCK).new; echo "$(LOCK) unchanged"; \
	else mv $(LOCK).new $(LOCK); echo "$(LOCK) updated"; fi

# Known vulnerabilities in the locked versions. pip-audit is installed into .venv on
# first use, held to the locked versions of anything it shares with the project. It
# reads the lock as it is (no install, no resolution) and asks a vulnerability service
# over the network (PyPI's by default; AUDIT_ARGS='-s osv' for OSV). --strict: a
# package the service gives no answer for fails the audit instead of being skipped.
AUDIT_ARGS ?=
audit: venv
	@test -x $(BIN)/pip-audit || { \
		sed -n 's/^\([A-Za-z0-9._-]*==[^ ;]*\).*/\1/p' $(LOCK) > $(VENV)/lock-pins.txt && \
		$(BIN)/python -m pip install --quiet pip-audit -c $(VENV)/lock-pins.txt; }
	@out=$$(mktemp); \
	$(BIN)/pip-audit -r $(LOCK) --require-hashes --disable-pip --strict \
		--progress-spinner off $(AUDIT_ARGS) >$$out 2>&1; \
	rc=$$?; cat $$out; \
	if [ $$rc -ne 0 ] && grep -qE 'could not be audited|ConnectionError|NameResolution|Max retries|timed out|ServiceError' $$out; then \
		echo "make audit: could not reach the vulnerability service, or it had no answer for the locked versions: the lock was NOT checked." >&2; \
	fi; \
	rm -f $$out; exit $$rc

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

demo: $(STAMP)
	$(BIN)/fatigue-guard demo

# ruff, the layering of the packages (.importlinter: a new back-arrow fails the build), and
# bandit on src (findings are fixed or waived in place with their reason).
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/bandit -c pyproject.toml -r src -q

# Two pytest workers: most tests wait on servers, stores and child processes rather than compute,
# so two of them overlap on two cores (about 12 minutes instead of 20). Every test makes its own
# database, ports and folders, so workers share nothing but the machine.
PYTEST_WORKERS ?= 2

test: $(STAMP) $(NODE_STAMP) lint
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

clean:
	rm -rf $(VENV) node_modules .fatigue-guard .pytest_cache
