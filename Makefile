# Every target sets up .venv on first use, so `make test` and `make demo` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch / torchvision are pinned to the builds this project is tested with.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
# glibc allocator settings: without them, 2-core machines stall for seconds in malloc (see docs/benchmarks.md).
export MALLOC_ARENA_MAX ?= 1
export MALLOC_MMAP_THRESHOLD_ ?= 33554432
export MALLOC_TRIM_THRESHOLD_ ?= 4294967296
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install test test-fast lint format docs docs-serve demo demo-digits clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[test,offline,docs]"
	touch $(STAMP)

install: $(STAMP)

# Two pytest workers (pytest-xdist), each test module on one worker (its module fixtures built once).
PYTEST_WORKERS ?= 2
test: lint docs
	$(PY) -m pytest tests -q -n $(PYTEST_WORKERS) --dist loadscope

test-fast: $(STAMP)
	$(PY) -m pytest tests -q -m "not slow" -n $(PYTEST_WORKERS) --dist loadscope

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The documentation site (MkDocs + mkdocstrings), built strictly: a broken link, anchor or docstring fails it
# (never add --quiet: it silences the warnings that --strict turns into a failure).
export NO_MKDOCS_2_WARNING ?= 1
docs: $(STAMP)
	$(PY) -m mkdocs build --strict

docs-serve: $(STAMP)
	$(PY) -m mkdocs serve

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) build dist site *.egg-info .pytest_cache .ruff_cache

# The main job: ERM (dropout 0) and very large dropout (0.9) with the same budget on the embedded offline
# natural-image benchmark `styles` (held-out sketch, embedded ImageNet EfficientNet-Lite0), then a side-by-side table.
DEMO_DIR ?= runs/demo
DEMO_CONFIG ?= examples/configs/styles.yaml

# One run at a time with 2 torch threads: data is read in the main process (a DataLoader worker would take CPU from
# the two threads; see docs/benchmarks.md). Batches are seeded, so the worker count changes no result. The colour
# augmentation runs on each batch's tensors (`domainbed_batched`: every image its own draws, as DomainBed's; shown to
# train as well over 5 seeds in docs/benchmarks.md). The demo's folders are its own: a second `make demo` replaces
# them (a recipe alone never overwrites a finished run).
DEMO_FLAGS ?= --dataloader_num_workers 0 --augmentation domainbed_batched --overwrite_output_dir True
# examples/demo.py runs ERM ($(DEMO_DIR)/erm), p=0.9 ($(DEMO_DIR)/bigdrop) and their comparison in one process: the
# same as examples/run_ood.py twice and examples/compare_runs.py, with the imports paid once.
demo: $(STAMP)
	$(PY) examples/demo.py $(DEMO_CONFIG) --output_dir $(DEMO_DIR) $(DEMO_FLAGS)

# The same comparison on the embedded `digits` benchmark (held-out mnist): the machinery on small digit images.
demo-digits:
	$(MAKE) demo DEMO_CONFIG=examples/configs/digits.yaml DEMO_DIR=runs/demo-digits
