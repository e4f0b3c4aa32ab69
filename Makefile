# The two commands of the README: `make demo` and `make test`. Each sets itself up from a
# fresh clone: a virtual environment in .venv, installed from the pinned constraints.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(PY) -m pip
STAMP := $(VENV)/.installed
export SDL_VIDEODRIVER ?= dummy
export PYGAME_HIDE_SUPPORT_PROMPT := 1

.PHONY: demo test slow bench reproduce reproduce-ipd reproduce-coin reproduce-negotiation reproduce-published-league \
	reproduce-full-league install lint clean

$(STAMP): pyproject.toml constraints.txt scripts/install_meltingpot.py
	@test -x $(PY) || { echo "[install] creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "[install] installing social-dilemmas and its pinned dependencies into $(VENV)"
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	$(PY) scripts/install_meltingpot.py
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=10

# long training runs, kept out of CI
slow: $(STAMP)
	$(PY) -m pytest -m slow -n 2

# the paper's results, reproduced by example scripts (long: see the README's Results)
# (make reproduce-ipd, reproduce-coin, reproduce-negotiation, reproduce-published-league, reproduce-full-league for one of them)
# PUBLISHED: the authors' Coin Game agents (a clone's league/checkpoints works too)
PUBLISHED ?= ../shared/published_league
reproduce: reproduce-ipd reproduce-published-league reproduce-coin reproduce-negotiation

reproduce-ipd: $(STAMP)
	$(PY) examples/ipd_tit_for_tat.py --seeds 10 --threads 1 --out runs/reproduce/ipd
	$(PY) examples/ipd_tit_for_tat.py --seeds 10 --threads 1 --actor gru --out runs/reproduce/ipd-gru

reproduce-coin: $(STAMP)
	$(PY) examples/reproduce_league.py --env coin_game --seeds 10 --jobs 2 --published $(PUBLISHED) \
		--out runs/reproduce/coin_game

reproduce-published-league: $(STAMP)
	$(PY) examples/published_league.py --published $(PUBLISHED) --out runs/reproduce/published_league

reproduce-negotiation: $(STAMP)
	$(PY) examples/reproduce_league.py --env negotiation --seeds 10 --jobs 2 --out runs/reproduce/negotiation

# Fig. 7: AdAlign, its sign ablations, LOQA, POLA, M-FOS, scripted and published players
reproduce-full-league: $(STAMP)
	$(PY) examples/full_league.py --seeds 10 --jobs 2 --threads 1 --published $(PUBLISHED) \
		--out runs/reproduce/full_league

# benchmarks: a second environment holds the JaxMARL reference
.venv-bench/.installed: benchmarks/constraints-jaxmarl.txt
	@test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install -q -c benchmarks/constraints-jaxmarl.txt jaxmarl
	@touch $@

bench: $(STAMP) .venv-bench/.installed
	$(PY) benchmarks/env_throughput.py --jax-python .venv-bench/bin/python
	$(PY) benchmarks/compare_jaxmarl.py --jax-python .venv-bench/bin/python
	$(PY) benchmarks/memory.py
	$(PY) benchmarks/render_speed.py
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/commons_harvest_speed.py
	$(PY) benchmarks/sweep_scaling.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .venv-bench .pytest_cache .hypothesis runs
