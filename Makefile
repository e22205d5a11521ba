# Two commands do all the set-up on a fresh Debian/Ubuntu machine:
#   make demo   sample data -> build -> serve on http://127.0.0.1:8000, printing customer links
#   make test   the whole test suite (installs what it needs first)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=
# `make demo DEMO_ARGS="--port 8080"` passes options to `portal demo`.
DEMO_ARGS ?=

.PHONY: demo test install install-test system-deps bench lint imports clean messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Each install runs again only when pyproject.toml changed since (or never ran): a stamp file in the venv says
# when it last ran, so a second `make demo` starts at once. The package is editable: code changes need no install.
# The test install includes the plain one, so it updates both stamps.
install: $(VENV)/.installed

install-test: $(VENV)/.installed-test $(VENV)/.installed-scan

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,server]'
	touch $@ $(VENV)/.installed

# The template scanner in an environment of its own (its pins would downgrade the project's boto3 and
# pytest's packaging), linked next to the project's python, where tests/project/test_infra.py looks for it.
# A stamp, not the link: make reads the link's target's time, which a reinstall of the same version leaves old.
$(VENV)/.installed-scan: pyproject.toml | $(BIN)/python
	$(PYTHON) -m venv $(VENV)/scan
	$(VENV)/scan/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/scan/bin/python -m pip install --quiet --group scan
	ln -sf ../scan/bin/checkov $(BIN)/checkov
	touch $@

demo: install
	$(BIN)/portal demo $(DEMO_ARGS)

# Installs the system packages the tests use (a real browser, a real PostgreSQL server, wrk for the load
# benchmark, the PDFs' fonts: tests/tools.py APT) only when something is missing (root or sudo needed then). tests/tools.py says
# what is missing: it looks where the tests look (the packaged paths, not PATH).
system-deps:
	@missing="$$($(PYTHON) tests/tools.py apt-missing)"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

test: system-deps install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python bench/build.py

lint: imports
	$(BIN)/python -m pip install --quiet ruff
	$(BIN)/ruff check portal webhook tests bench

# The import contracts in pyproject.toml (which package may import which: README.md, Architecture). The
# program is found as the tests find theirs (tests/tools.py: the venv, never PATH).
imports: install-test
	@program="$$($(BIN)/python tests/tools.py path lint-imports)" && "$$program" --no-cache --no-logo

# The translations (docs/translations.md): extract every marked string into the template, merge it into each
# language's catalog (new strings arrive untranslated, changed ones fuzzy: tests/core/test_i18n.py fails on both
# until a translator fills them in), then compile the .mo files (build outputs, not in git; the program reads the
# .po when no fresh .mo is there, so a fresh clone needs none of this).
LOCALE_DIR := portal/locale
messages: install
	$(BIN)/pybabel extract -F babel.cfg -k N_ -o $(LOCALE_DIR)/messages.pot --project="AR portal" \
	  --msgid-bugs-address="" --sort-by-file --add-location=file -c "Translators:" .
	$(BIN)/pybabel update -i $(LOCALE_DIR)/messages.pot -d $(LOCALE_DIR) --previous --ignore-pot-creation-date
	$(BIN)/pybabel compile -d $(LOCALE_DIR) --statistics

clean:
	rm -rf $(VENV) $(LOCALE_DIR)/*/LC_MESSAGES/*.mo build/c build/docs build/assets build/.manifest.json demo portal.db outbox private test-artifacts
