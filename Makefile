# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha1sum | cut -c1-12)
DEMO_DIR ?= runs/demo
PYTEST_WORKERS ?= 2

.PHONY: install demo test test-fast lint speed foundation clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/addressclip demo --out $(DEMO_DIR)

test: $(STAMP)
	$(VENV)/bin/ruff check src tests speed
	$(PY) -m pytest -n $(PYTEST_WORKERS) tests

# The inner loop: everything but the tests marked slow (demo, DDP, browser, full renders, subprocesses).
test-fast: $(STAMP)
	$(VENV)/bin/ruff check src tests speed
	$(PY) -m pytest -n $(PYTEST_WORKERS) -m "not slow" tests

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests speed
	$(VENV)/bin/ruff format --check src tests speed

speed: $(STAMP)
	$(PY) speed/bench_addressbook.py

# Rebuild the shipped street-CLIP foundation (see src/addressclip/resources/foundation/MODEL_CARD.md):
# render the training cities' atlas, pretrain on it without the evaluation cities, write the slim file.
FOUNDATION := src/addressclip/resources/foundation/street-clip-foundation.pt
foundation: $(STAMP)
	$(VENV)/bin/addressclip atlas --cities training --out runs/atlas --size 128 --spacing 20 --views 2
	$(VENV)/bin/addressclip pretrain --config cpu data=runs/atlas/manifest.parquet out=runs/foundation \
		'pretrain.exclude_cities=[helsinki,karhula,heidelberg]' pretrain.epochs=8 --slim-out $(FOUNDATION)

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
