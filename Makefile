# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run alpr test lint bench fuzz train-ocr clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

# Installs, then starts PostgreSQL (embedded unless ALPR_DATABASE_URL is set) and the four services.
run: $(STAMP)
	$(BIN)/alpr up

# The operator CLI with the settings `make run` saved in the data folder, e.g.
#   make alpr ARGS="access create-admin --username admin --name 'First Admin' --agency MN0271200"
alpr: $(STAMP)
	$(BIN)/alpr $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared

# Installs, lints, then runs every test against a real PostgreSQL and a real S3 server.
test: lint
	$(BIN)/pytest

# The OpenAPI fuzz of every service for longer than `make test` gives it (FUZZ_SECONDS per service). The fuzzed
# services listen on FUZZ_PORT to FUZZ_PORT+3 and call each other there: it runs beside a live system on 8001-8004.
FUZZ_SECONDS ?= 300
FUZZ_PORT ?= 18001
fuzz: $(STAMP)
	ALPR_FUZZ_SECONDS=$(FUZZ_SECONDS) ALPR_FUZZ_EXAMPLES=1000 ALPR_FUZZ_PORT=$(FUZZ_PORT) \
		$(BIN)/pytest tests/fuzz -p no:cacheprovider

# Prints one JSON object, a key per benchmark.
bench: $(STAMP)
	$(BIN)/python -m bench

# Retrains the plate head (services/recognition/models/plate_head.onnx) in its own environment with PyTorch (CPU).
# DEV is a folder of labelled photos; every other one is trained on and left out of `alpr eval-ocr` afterwards.
# MODEL=second-reader fine-tunes the second reader on synthetic plates only (no photo) into
# var/second-reader/ (docs/recognition-27.md); measure it with `alpr eval-ocr DEV --second-reader-weights FILE`.
DEV ?= ../shared/data/plates-us-dev
MODEL ?= plate-head
train-ocr:
	test -x .venv-train/bin/python || $(PYTHON) -m venv .venv-train
	.venv-train/bin/python -m pip install -q -e '.[train]'
ifeq ($(MODEL),second-reader)
	.venv-train/bin/python -m services.recognition.training.second
else
	.venv-train/bin/python -m services.recognition.training.train --dev $(DEV)
endif

clean:
	rm -rf $(VENV) .venv-train .pytest_cache .ruff_cache .mypy_cache
