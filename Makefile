# Two commands on a fresh machine: `make demo` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
EXAMPLE := examples/tabular/spec.yaml

.PHONY: install demo test browser benchmark clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# A regular (non-editable) install: the tests exercise exactly what a user gets.
install: $(PY)
	$(PY) -m pip install -q ".[test,ray]"

demo: install
	$(VENV)/bin/sensreport run $(EXAMPLE) --out examples/tabular/report
	@echo "open examples/tabular/report/report.html"

# Report tests drive Debian's Chromium through Playwright; install it when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

test: install browser
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) build *.egg-info examples/*/report
