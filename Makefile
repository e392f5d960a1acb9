# The two entry points: `make demo` (the main job on the embedded corpus) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: setup setup-test demo evidence test lint clean

# what the demo needs: torch and the harness with its own dependencies
setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	# torch first, pinned, so pip takes the local CPU wheel instead of a multi-GB CUDA build
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

# what the tests add: pytest and ruff, Ray, the reference implementations, the example plugin package
setup-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed examples/harness-plugin-example/setup.cfg
	$(PIP) -e '.[test,ray]'
	# independent reference implementations for equivalence tests and benchmarks (no deps needed)
	$(PIP) --no-deps s3prl==0.4.18 zerospeech-libriabx2==0.9.8
	$(PIP) -e examples/harness-plugin-example
	touch $@

demo: setup
	$(VENV)/bin/harness run recipes/demo.yaml --jobs 2
	$(VENV)/bin/harness leaderboard runs/demo --format md --out runs/demo/leaderboard.md
	cat runs/demo/leaderboard.md
	# the main table, which README.md quotes between its demo-leaderboard markers (tests/test_readme_demo.py)
	mkdir -p docs
	awk '/^\| upstream \| model \| seeds/{p=1} p && !/^\|/{exit} p' runs/demo/leaderboard.md > docs/demo_leaderboard.md
	# how far each model moved from the pre-trained one (README.md quotes it between its demo-drift markers)
	$(VENV)/bin/harness drift runs/demo --format md --plot runs/demo/drift.png > docs/demo_drift.md
	cat docs/demo_drift.md

# the demo over three seeds, into runs/demo (seed 0's stages are the demo's): the tables and the
# comparisons README.md quotes between its evidence-leaderboard markers
evidence: setup
	$(VENV)/bin/harness run recipes/demo_evidence.yaml --jobs 2
	$(VENV)/bin/harness leaderboard runs/demo --format md --out runs/demo/leaderboard.md
	mkdir -p docs
	awk '/^\| upstream \| model \| seeds/{p=1} /^## ABX/{exit} p' runs/demo/leaderboard.md > docs/demo_evidence.md
	cat docs/demo_evidence.md
	# how far each model moved, the mean over the three seeds (README.md quotes it between its evidence-drift markers)
	$(VENV)/bin/harness drift runs/demo --format md > docs/demo_evidence_drift.md
	cat docs/demo_evidence_drift.md

test: setup-test
	# pytest exits 5 when it collected no tests: that is a failure too
	$(VENV)/bin/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected" >&2; exit 1; fi; exit $$rc

lint: setup-test
	$(VENV)/bin/ruff check .

clean:
	rm -rf runs .pytest_cache
