# The two entry points: `make demo` (the main job on the embedded corpus) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: setup demo test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml examples/harness-plugin-example/setup.cfg
	python3 -m venv $(VENV)
	# torch first, pinned, so pip takes the local CPU wheel instead of a multi-GB CUDA build
	$(PIP) torch==2.13.0
	$(PIP) -e '.[test,ray]'
	# independent reference implementations for equivalence tests and benchmarks (no deps needed)
	$(PIP) --no-deps s3prl==0.4.18 zerospeech-libriabx2==0.9.8
	$(PIP) -e examples/harness-plugin-example
	touch $@

demo: setup
	$(VENV)/bin/harness run recipes/demo.yaml
	$(VENV)/bin/harness leaderboard runs/demo --format md

test: setup
	# pytest exits 5 when it collected no tests: that is a failure too
	$(VENV)/bin/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected" >&2; exit 1; fi; exit $$rc

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs .pytest_cache
