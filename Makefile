# The README's two commands: `make demo` (set up + run the embedded default) and `make test` (set up + tests).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.maestro-installed
PLUGINS := $(wildcard plugins/*/pyproject.toml)

.PHONY: setup demo test test-slow bench clean

setup: $(STAMP)

# The environment is exactly requirements.lock (pip: only pip sees the local torch wheels), then maestro and every
# plugin in plugins/ as editable installs without dependency resolution (the lock already holds their needs).
$(STAMP): requirements.lock pyproject.toml $(PLUGINS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . $(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $(STAMP)

demo: setup
	$(VENV)/bin/maestro run examples/audio/thunder_piano.wav -o maestro-out/demo

test: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not slow" -q

test-slow: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m slow -q

bench: setup
	$(PY) benchmarks/plugins_listing.py
	$(PY) benchmarks/separation.py
	$(PY) benchmarks/separation_fallback.py
	$(PY) benchmarks/busy_neighbour.py
	$(PY) benchmarks/omp_wait_policy.py
	$(PY) benchmarks/mosaic.py
	$(PY) benchmarks/unet.py
	$(PY) benchmarks/fifo.py
	$(PY) benchmarks/batch.py

clean:
	rm -rf $(VENV) maestro-out .pytest_cache
