# Two commands from a fresh clone: `make tour` and `make test`. Both are idempotent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: tour test lint bench fuzz clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the project's metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,export,serve]'
	touch $(STAMP)

tour: $(STAMP)
	$(BIN)/antlers tour

# Debian packages the suite needs (Fashion-MNIST, Chromium); a no-op when present.
system-deps:
	bash scripts/system-deps.sh

# The suite, after the lint that CONTRIBUTING asks for (CI runs this target). Two pytest-xdist
# workers, a test file each at a time (module fixtures such as the quick tour run once): much of
# the suite waits on one core (subprocesses, Pillow, Python), so two cores finish it sooner.
test: $(STAMP) system-deps
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/conv.py
	$(BIN)/python benchmarks/classify.py
	$(BIN)/python benchmarks/segment.py
	$(BIN)/python benchmarks/topk.py
	$(BIN)/python benchmarks/generate.py    # needs diffusers (pip install -e '.[bench]'); ~75 min
	$(BIN)/python benchmarks/detect.py

# Every reader fuzzed for minutes; records docs/reliability.md's fuzzing table.
fuzz: $(STAMP)
	$(BIN)/python benchmarks/fuzz.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .hypothesis
