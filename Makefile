# Two commands for a newcomer:  make dashboard  and  make test.
# Both create .venv on first use and install what they need into it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: dashboard lab test test-fast benchmarks browser clean strip binder-link

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

# Stamps re-run the install whenever pyproject.toml changes.
$(VENV)/.app-installed: pyproject.toml | $(PY)
	$(PIP) -e '.[app]'
	@touch $@

$(VENV)/.test-installed: pyproject.toml | $(PY)
	$(PIP) -e '.[app,test,measure]'
	@touch $@ $(VENV)/.app-installed

dashboard: $(VENV)/.app-installed
	$(VENV)/bin/morph serve

# JupyterLab refuses to run as root without --allow-root (containers often run as root).
# The lab's root is notebooks/, so the dashboard is at /voila/render/dashboard.ipynb.
lab: $(VENV)/.app-installed
	$(VENV)/bin/jupyter lab notebooks/ $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

# The Binder badge for this repository, from its own git remote (origin on GitHub).
binder-link:
	@repo=$$(git remote get-url origin 2>/dev/null | sed -E 's#^(git@github\.com:|https://github\.com/)##; s#\.git$$##'); \
	case "$$repo" in ""|*:*|*//*) echo "no GitHub remote 'origin': replace OWNER/REPO in README.md's Binder line by hand" >&2; exit 2;; esac; \
	echo "[![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/$$repo/HEAD?urlpath=voila/render/notebooks/dashboard.ipynb)"

# Browser tests need Debian's chromium; install it when missing and allowed.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found: browser tests will be skipped (install Debian's chromium to run them)"; fi; }

test: $(VENV)/.test-installed browser
	$(PY) -m pytest

test-fast: $(VENV)/.test-installed
	$(PY) -m pytest -m "not browser and not notebooks and not slow"

benchmarks: $(VENV)/.test-installed
	@for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

strip: $(VENV)/.test-installed
	$(VENV)/bin/nbstripout notebooks/*.ipynb

clean:
	rm -rf $(VENV) build dist .pytest_cache .hypothesis
