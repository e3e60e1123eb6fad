# The two set-up commands promised in README.md:
#   make demo   create .venv, install, start the demo on a bundled example
#   make test   create .venv, install everything the tests need (chromium too), run the suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev

.PHONY: demo test install install-dev chromium lint clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install -q -r requirements.txt 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	$(PY) -m pip install -q --no-deps -e . 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	touch $@

$(DEVSTAMP): $(STAMP) requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" ; test $${PIPESTATUS[0]} -eq 0
	touch $@

install: $(STAMP)
install-dev: $(DEVSTAMP)

# Debian's chromium for the browser tests (never `playwright install`). Nothing is installed
# when it is already there; otherwise make says what it runs, and why, before it runs it.
APT_INSTALL := apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
chromium:
	@if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	echo "make: installing Debian's chromium package (apt-get update; apt-get install -y chromium):" \
	  "tests/test_demo_browser.py drives the demo in it"; \
	if [ "$$(id -u)" = 0 ]; then $(APT_INSTALL); \
	else echo "make: not root, so this runs through sudo, which may ask for your password"; \
	  sudo sh -c '$(APT_INSTALL)'; fi

demo: $(STAMP)
	$(PY) -m demos.app

test: $(DEVSTAMP) chromium
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(DEVSTAMP)
	$(VENV)/bin/ruff check msn_core tests demos benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
