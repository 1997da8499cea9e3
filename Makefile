# The single entry point. Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TRIAGE := $(VENV)/bin/triage
PROTO  := protos/triage/v1/triage.proto
# Server only: the request messages with text and ids as bytes (see the file's comment).
SERVER_PROTO := protos/triage/v1/incoming.proto

.PHONY: install dev model train serve test lint format proto check-proto bench compare clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml tests/node/package-lock.json | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	@if command -v npm >/dev/null; then npm ci --silent --no-audit --no-fund --prefix tests/node; \
	else echo "npm not found: the Node client test will be skipped"; fi
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed          ## runtime dependencies
dev: $(VENV)/.installed-dev          ## runtime + test, lint and proto tooling

model: install                       ## train and promote the default model if models/ has none
	$(TRIAGE) train --if-missing --promote

train: install                       ## check training/data, train, print the report, promote if not worse
	TRIAGE=$(TRIAGE) training/retrain.sh

serve: model                         ## run the gRPC service on the default model
	$(TRIAGE) serve

test: dev                            ## the test suite
	$(PY) -m pytest

lint: dev
	$(VENV)/bin/ruff check triage tests bench training
	$(VENV)/bin/ruff format --check triage tests bench training
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: dev
	$(VENV)/bin/ruff format triage tests bench training
	$(VENV)/bin/ruff check --fix triage tests bench training

proto: dev                           ## regenerate triage/v1 from protos/
	$(PY) -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTO)
	$(PY) -m grpc_tools.protoc -I protos --python_out=. --pyi_out=. $(SERVER_PROTO)

check-proto: dev                     ## fail if triage/v1 differs from what protos/ generates
	@tmp=$$(mktemp -d) && \
	$(PY) -m grpc_tools.protoc -I protos --python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp $(PROTO) && \
	$(PY) -m grpc_tools.protoc -I protos --python_out=$$tmp --pyi_out=$$tmp $(SERVER_PROTO) && \
	for f in triage_pb2.py triage_pb2.pyi triage_pb2_grpc.py incoming_pb2.py incoming_pb2.pyi; do \
	  diff -u triage/v1/$$f $$tmp/triage/v1/$$f || { echo "triage/v1/$$f is stale: run make proto"; exit 1; }; \
	done && rm -rf $$tmp && echo "generated code matches $(PROTO) $(SERVER_PROTO)"

bench: dev model                     ## training time, predict throughput, service latency
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/run.py

compare: install                     ## the candidate comparison of docs/model.md
	$(TRIAGE) compare --test training/data/test.jsonl

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/node/node_modules
