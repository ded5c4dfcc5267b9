# Two commands on a fresh machine: `make demo` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
EXAMPLE := examples/tabular/spec.yaml

# Dependencies come from lock files with hashes (CI installs exactly these); pyproject.toml
# only states ranges. requirements.lock: the versions CI and `make test` use.
# requirements-lowest.lock: every direct dependency at the lowest version pyproject allows.
LOCK        := requirements.lock
LOWEST_LOCK := requirements-lowest.lock
LOWEST      := .venv-lowest
# uv only compiles the lock files; it lives in a scratch venv of its own, never in $(VENV).
UVENV      := .venv-uv
UV         := $(UVENV)/bin/uv
UV_VERSION := 0.13.8
# Both locks: the extras CI installs, for Python 3.11 on Linux x86_64 (glibc >= 2.28).
# `make lock` keeps every version already in a lock file (uv prefers them); to move one:
# `make lock LOCK_FLAGS='--upgrade-package numpy'` (or `--upgrade` for all).
COMPILE := pip compile pyproject.toml --extra cpu --extra test --extra ray --generate-hashes \
           --python-version 3.11 --python-platform x86_64-manylinux_2_28
LOCK_FLAGS ?=
# What the non-editable install is built from: reinstall when any of it changes.
SOURCES := pyproject.toml README.md $(shell find sensreport templates -type f ! -name '*.pyc' 2>/dev/null)
# Extra pytest arguments, e.g. `make test-lowest PYTEST_ARGS='-x -q tests/test_spec.py'`.
PYTEST_ARGS ?=

.PHONY: install lock demo test test-lowest browser benchmark clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# The locked dependencies, re-installed only when the lock file changes.
$(VENV)/.lock-installed: $(LOCK) | $(PY)
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	touch $@

# A regular (non-editable) install: the tests exercise exactly what a user gets.
$(VENV)/.sensreport-installed: $(VENV)/.lock-installed $(SOURCES)
	$(PY) -m pip install -q --no-deps --force-reinstall .
	touch $@

install: $(VENV)/.sensreport-installed

# Regenerates both lock files with the commands written at their top:
#   uv pip compile pyproject.toml --extra cpu --extra test --extra ray --generate-hashes \
#     --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock
#   (the same with --resolution lowest-direct -o requirements-lowest.lock)
$(UV):
	python3 -m venv $(UVENV)
	$(UVENV)/bin/python -m pip install -q uv==$(UV_VERSION)

lock: $(UV)
	$(UV) $(COMPILE) $(LOCK_FLAGS) -o $(LOCK)
	sed -i '1i # `make lock` regenerates this file (uv $(UV_VERSION)); `make install` installs it with pip --require-hashes.' $(LOCK)
	$(UV) $(COMPILE) --resolution lowest-direct $(LOCK_FLAGS) -o $(LOWEST_LOCK)
	sed -i '1i # `make lock` regenerates this file (uv $(UV_VERSION)); `make test-lowest` installs it with pip --require-hashes.' $(LOWEST_LOCK)

demo: install
	$(VENV)/bin/sensreport run $(EXAMPLE) --out examples/tabular/report
	@echo "open examples/tabular/report/report.html"

# Report tests drive Debian's Chromium through Playwright; install it when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

test: install browser
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The same suite on the lowest versions pyproject.toml allows, in a venv of its own.
$(LOWEST)/bin/python:
	python3 -m venv $(LOWEST)
	$@ -m pip install -q --upgrade pip

$(LOWEST)/.lock-installed: $(LOWEST_LOCK) | $(LOWEST)/bin/python
	$(LOWEST)/bin/python -m pip install -q --require-hashes -r $(LOWEST_LOCK)
	touch $@

$(LOWEST)/.sensreport-installed: $(LOWEST)/.lock-installed $(SOURCES)
	$(LOWEST)/bin/python -m pip install -q --no-deps --force-reinstall .
	touch $@

test-lowest: $(LOWEST)/.sensreport-installed browser
	$(LOWEST)/bin/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(LOWEST) $(UVENV) build *.egg-info examples/*/report
