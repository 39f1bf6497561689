# Two commands for a newcomer:  make dashboard  and  make test.
# Both create .venv on first use and install what they need into it.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
# Exact versions the suite passed with, used as pip constraints: `make lock` refreshes them.
LOCK := requirements.lock
# numpy's AVX-512 kernels, switched off to run the suite on the AVX2 path (any CPU accepts the list).
NO_AVX512 := AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR AVX512VL AVX512BW \
  AVX512DQ AVX512VNNI AVX512IFMA AVX512VBMI AVX512VBMI2 AVX512BITALG AVX512VPOPCNTDQ AVX512BF16 AVX512FP16 X86_V4

.PHONY: dashboard lab test test-fast test-no-avx512 benchmarks browser clean strip lock binder-link plotly-bundle

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

# Stamps re-run the install whenever pyproject.toml or the lock changes.
$(VENV)/.app-installed: pyproject.toml $(LOCK) | $(PY)
	$(PIP) -c $(LOCK) -e '.[app]'
	@touch $@

$(VENV)/.test-installed: pyproject.toml $(LOCK) | $(PY)
	$(PIP) -c $(LOCK) -e '.[app,test,measure]'
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

# Two workers, one per core of the machines Morph is tested on; a file's tests stay on one worker, so the
# servers and browsers a file starts are started once.
XDIST := -n 2 --dist loadfile

# Morph compiled once: the suite starts about a hundred kernels and interpreters, and where
# PYTHONDONTWRITEBYTECODE is set each of them would compile it again.
test: $(VENV)/.test-installed browser
	$(PY) -m compileall -q morph > /dev/null
	$(PY) -m pytest $(XDIST)

test-fast: $(VENV)/.test-installed
	$(PY) -m pytest -m "not browser and not notebooks and not slow"

# The same tests on numpy's other SIMD path: a result that holds on one kind of CPU only fails here.
test-no-avx512: $(VENV)/.test-installed
	NPY_DISABLE_CPU_FEATURES="$(NO_AVX512)" $(PY) -m pytest $(XDIST) -m "not browser and not notebooks"

# Re-resolve pyproject.toml in a fresh environment, write the lock, print what changed.
lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	build/lock-venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[app,test,measure]'
	build/lock-venv/bin/python -m pip freeze --exclude-editable | build/lock-venv/bin/python tools/lock.py $(LOCK)
	rm -rf build/lock-venv

# Every script exits 1 when it misses a target: run them all, then fail if any did.
benchmarks: $(VENV)/.test-installed
	@failed=""; for script in benchmarks/bench_*.py; do echo "== $$script"; \
	  $(PY) $$script || failed="$$failed $$script"; done; \
	if [ -n "$$failed" ]; then echo "missed a target or failed:$$failed"; exit 1; fi

# The figure widget's script on a partial plotly.js: lib/core (with scatter) and the trace types
# Morph draws, listed in tools/plotly-widget/plotly-partial.js (about 1.3 MB instead of 5 MB).
# Versions are pinned in tools/plotly-widget/package.json and checked by npm ci against the
# integrity hashes in its package-lock.json; the built file is committed with the licence of
# every package in it, so installing Morph never needs npm. Rerun when plotly.py's plotly.js
# version changes (tests/test_bundle.py says so). esbuild's settings are plotly.js's own
# (global, define.amd); map traces' stylesheet is left empty, as no map trace is built.
WIDGET_SRC := tools/plotly-widget
WIDGET_OUT := morph/app/plotly_widget
plotly-bundle:
	cd $(WIDGET_SRC) && npm ci --no-audit --no-fund --ignore-scripts
	mkdir -p $(WIDGET_OUT)
	cd $(WIDGET_SRC) && node_modules/.bin/esbuild --bundle --alias:plotly.js=./plotly-partial.js \
	  --define:global=window --define:define.amd=false --loader:.css=empty \
	  --format=esm --minify --log-level=warning --metafile=node_modules/.widget-meta.json \
	  --outfile=$(CURDIR)/$(WIDGET_OUT)/widget.js widget.ts
	$(PYTHON) $(WIDGET_SRC)/manifest.py $(WIDGET_OUT) $(WIDGET_SRC) $(WIDGET_SRC)/node_modules/.widget-meta.json

strip: $(VENV)/.test-installed
	$(VENV)/bin/nbstripout notebooks/*.ipynb

clean:
	rm -rf $(VENV) build dist .pytest_cache .hypothesis
