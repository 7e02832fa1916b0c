# compnet: `make install` once, then `make test`, `make lint`, `make paper`, `make classify`, `make bench`; `make readme`
# puts the newest `make paper`, `make ablations`, `make pieces` and `make classify` results into README.md.
# Sweeps on Slurm: `make install-slurm`; `make slurm-up` starts a real one-node Slurm on this machine (root, Debian) to try it, `make slurm-down` stops it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
COMPNET := $(BIN)/compnet
ARGS ?=
# make paper SEEDS=0,1,2,3,4: every table at each seed, and their spread (seeds.md)
SEEDS ?=


.PHONY: install install-slurm slurm-up slurm-down lint format test test-fast table1 table2 table3 depth extensions paper ablations pieces classify readme regions bench bench-kernel clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install-slurm: install
	$(BIN)/pip install --quiet -c constraints.txt -e '.[slurm]'

slurm-up:
	scripts/slurm.sh up

slurm-down:
	scripts/slurm.sh down

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: install
	$(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -m "not slow"

table1 table2 table3 depth extensions: install
	$(COMPNET) train experiment=$@ $(ARGS)

paper: install
	$(BIN)/python scripts/paper.py $(if $(SEEDS),--seeds $(SEEDS)) $(ARGS)

ablations: install
	$(BIN)/python scripts/ablations.py $(ARGS)

pieces: install
	$(COMPNET) train experiment=table1 regions_every=50 $(ARGS)

classify: install
	$(COMPNET) classify $(ARGS)

readme: install
	$(BIN)/python scripts/readme.py

regions: install
	$(COMPNET) regions $(ARGS)

bench: install
	$(BIN)/python scripts/bench.py $(ARGS)

bench-kernel: install
	$(BIN)/python scripts/kernel_speed.py $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
