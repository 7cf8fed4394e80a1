# pixelctl — install, test, lint. `make install && make test` on a fresh clone.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-cpu

.PHONY: install install-gpu apply-patches browser demo trap smoke-gpu reproduce test test-fast lint format bench clean-venv

install: $(STAMP)  ## create .venv with the pinned CPU stack (fast when nothing changed)

# Re-runs only when the requirements or pyproject change. torch/torchvision go first and alone:
# pip takes them from the machine's local wheels; uv/poetry would download a CUDA build.
$(STAMP): requirements/cpu.in requirements/cpu.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.14.1 torchvision==0.29.1
	$(PIP) install --quiet -r requirements/cpu.in -c requirements/cpu.lock
	$(PIP) install --quiet --no-deps openrlhf==0.11.2
	$(PIP) install --quiet --no-deps -e .
	$(PY) -m pixelctl.envinfo --check cpu
	touch $@

install-gpu:  ## GPU stack (CUDA machine): pinned engines + our patches applied to OpenRLHF
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e '.[gpu]'
	$(PY) -m pixelctl.envinfo --check gpu
	$(MAKE) apply-patches

# Each patch is checked with --dry-run first, so a half-applied tree never happens; a patch
# that is already applied is skipped (re-running install-gpu is safe).
apply-patches:
	@site=$$($(PY) -c "import openrlhf, pathlib; print(pathlib.Path(openrlhf.__file__).parent.parent)"); \
	shopt -s nullglob; for p in patches/openrlhf-0.11.2/*.patch; do \
	  if patch -p1 -R --dry-run -s -f -d "$$site" < "$$p" >/dev/null 2>&1; then echo "already applied: $$p"; \
	  else patch -p1 --dry-run -s -f -d "$$site" < "$$p" && patch -p1 -s -f -d "$$site" < "$$p" && echo "applied: $$p" || exit 1; fi; \
	done

browser:  ## headless Chromium from Debian's packages, for the viewer's browser test
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

demo: install  ## the whole pipeline on a tiny model (≈10 min on 2 cores; docs/demo.md)
	$(VENV)/bin/pixelctl demo

trap: install  ## the learning trap at tiny scale: RL with curiosity on/off, 3 seeds (docs/learning-trap.md)
	$(VENV)/bin/pixelctl demo --trap

# One GPU, ≈10 min: a Ray head if none answers, 6 prompts, the smoke recipe, then the checks
# (tests/helpers/smoke_check.py) and the peak GPU memory sampled by nvidia-smi.
smoke-gpu:  ## first command on a new GPU cluster: the OpenRLHF path end to end on a tiny model
	$(VENV)/bin/ray status >/dev/null 2>&1 || $(VENV)/bin/ray start --head --num-gpus=1 --disable-usage-stats
	$(PY) tests/helpers/smoke_data.py runs/smoke/data
	nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -l 2 > runs/smoke/gpu_memory.log & gpu=$$!; \
	$(VENV)/bin/pixelctl rl recipes/smoke_1gpu.yaml; rc=$$?; kill $$gpu; \
	$(PY) tests/helpers/smoke_check.py runs/rl/smoke_1gpu-latest runs/smoke/gpu_memory.log && exit $$rc

reproduce: install  ## the paper's run: prints the plan and stops without GPUs
	$(VENV)/bin/pixelctl reproduce recipes/7b_a800.yaml

test: install  ## the whole suite (unit, recipes, CPU integration with the tiny model)
	$(VENV)/bin/pytest -q

test-fast: install  ## unit tests only (seconds)
	$(VENV)/bin/pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install  ## every benchmark, quick sizes
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b --quick || exit 1; done

clean-venv:
	rm -rf $(VENV)
