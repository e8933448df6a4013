# topoprune: `make demo` and `make test` each do the whole set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/topoprune
# The CPU build of torch, pinned. Override for a CUDA build, e.g. make setup TORCH_SPEC="torch==2.13.0"
# with your own index in PIP_EXTRA_INDEX_URL.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: setup system-data demo test test-slow docs dist bench bench-structured bench-fitness bench-imp bench-study bench-extreme bench-damage bench-budgets bench-evaluate bench-report clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test,docs]"
	@touch $(STAMP)

# The main job: every method on the embedded digits data (configs/quickstart.yaml), resumable;
# writes runs/quickstart-<hash>/report.md and report.html.
demo: setup
	$(CLI) compare configs/quickstart.yaml --out runs

# Real Fashion-MNIST from Debian's package, where apt is available (as root or with sudo);
# elsewhere the real-data test is skipped and says why.
system-data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
	    || echo "note: could not install dataset-fashion-mnist; the real-data test will be skipped"; \
	fi

# Default suite: everything not marked slow (about five minutes on 2 cores, after set-up; the ten
# slowest tests are listed at the end, to keep it there).
test: setup system-data
	$(PY) -m pytest -m "not slow" --durations=10

# Slow tests: run weekly and before a release.
test-slow: setup
	$(PY) -m pytest -m slow

# The documentation site (mkdocs, Material theme, API reference from the docstrings) into site/;
# --strict turns every warning (a broken link, a docstring griffe cannot parse) into a failure.
# Fully offline: no web fonts, no CDN; open site/index.html directly.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# A wheel and an sdist into dist/ (the shipped configs travel inside the wheel as package data).
dist: setup
	$(PY) -m pip install --quiet "build>=1.2"
	rm -rf dist
	$(PY) -m build --outdir dist .

# Every benchmark (hours on 2 CPU cores: benchmarks/README.md gives each one's time). All resume.
bench: setup system-data
	$(PY) benchmarks/np_speed.py
	$(PY) benchmarks/train_overhead.py
	$(PY) benchmarks/prune_speed.py
	$(PY) benchmarks/prune_time.py
	$(PY) benchmarks/own_models.py --repeats 5
	$(PY) benchmarks/baseline_accuracy.py --model lenet300 --epochs 30 --seeds 0 1 2
	$(PY) benchmarks/baseline_accuracy.py --model vgg16 --width 0.25 --input-shape 1,32,32 --epochs 15 --seeds 0 1 2
	$(PY) benchmarks/critical_compression.py
	$(PY) benchmarks/np_early_stopping.py --model lenet300 --max-epochs 30 --patience 3 --seeds 0 1 2
	$(MAKE) bench-study bench-imp bench-structured bench-fitness bench-extreme bench-damage bench-budgets bench-evaluate bench-report

# Table 1: structured pruning of vgg16 w0.25 on Fashion-MNIST (about 1.5 h alone on 2 cores, measured)
bench-structured: setup system-data
	$(CLI) compare configs/fmnist-vgg16q-filters.yaml --out benchmarks/runs
	$(PY) benchmarks/export_run.py structured configs/fmnist-vgg16q-filters.yaml

# Table 1b: the GA with the np and activation fitness on table 1's baseline (after bench-structured; ~25 min)
bench-fitness: bench-structured
	$(CLI) compare configs/fmnist-vgg16q-topo-fitness.yaml --out benchmarks/runs
	$(PY) benchmarks/export_run.py structured configs/fmnist-vgg16q-topo-fitness.yaml

# Layer budgets at matched FLOPs (docs/benchmarks/budgets.md). VGG: two cells at a time, one thread each (on
# the 2-core reference machine that trains the 2x-FLOPs network 1.8x faster than one process with two
# threads: benchmarks/results/workers_throughput.md); about 4 h of wall time here, measured (benchmarks/README.md).
# ResNet-56: 37 to 74 core-hours of training alone (train_step_cost.py below), meant for a GPU (add
# --device cuda). Both resume.
bench-budgets: setup system-data
	$(CLI) compare configs/fmnist-vgg16q-budget.yaml --out benchmarks/runs --quiet --workers 2
	$(PY) benchmarks/export_run.py budget configs/fmnist-vgg16q-budget.yaml
	$(PY) benchmarks/budget_caps.py
	$(PY) benchmarks/train_step_cost.py
	$(CLI) compare configs/fmnist-resnet56-budget.yaml --out benchmarks/runs --quiet
	$(PY) benchmarks/export_run.py budget configs/fmnist-resnet56-budget.yaml

# Our methods through `topoprune evaluate --suite standard` (about 5 h of training, estimated by
# benchmarks/evaluate_cost.py), two cells at a time as bench-budgets; resumes
bench-evaluate: setup system-data
	$(PY) benchmarks/evaluate_ours.py --workers 2

# Table 2: IMP vs T-IMP vs one-shot magnitude vs random on lenet300, with controls (about 50 min)
bench-imp: setup system-data
	$(CLI) compare configs/fmnist-lenet300-imp.yaml --out benchmarks/runs --quiet
	$(PY) benchmarks/export_run.py imp configs/fmnist-lenet300-imp.yaml

# The activation study (about 15 min on one core)
bench-study: setup
	$(CLI) study activations configs/study-activations.yaml --out benchmarks/runs --quiet
	$(PY) benchmarks/export_run.py study configs/study-activations.yaml --name activation_study

# Extreme compression, 8x-1024x: LeNet-300-100 (~35 min) and a small conv net (~80 min)
bench-extreme: setup system-data
	$(CLI) compare configs/fmnist-lenet300-extreme.yaml --out benchmarks/runs --quiet
	$(PY) benchmarks/export_run.py extreme configs/fmnist-lenet300-extreme.yaml
	$(CLI) compare configs/fmnist-conv-extreme.yaml --out benchmarks/runs --quiet
	$(PY) benchmarks/export_run.py extreme configs/fmnist-conv-extreme.yaml

# The damage study: VGG-16 w0.25 filters (~2 h) and LeNet-300-100 masks (~15 min)
bench-damage: setup system-data
	$(CLI) study damage configs/fmnist-lenet300-damage.yaml --out benchmarks/runs --quiet
	$(PY) benchmarks/export_run.py damage configs/fmnist-lenet300-damage.yaml
	$(CLI) study damage configs/fmnist-vgg16q-damage.yaml --out benchmarks/runs --quiet
	$(PY) benchmarks/export_run.py damage configs/fmnist-vgg16q-damage.yaml

# The benchmark pages (docs/benchmarks/) from benchmarks/results/*.json: no training
bench-report: setup
	$(PY) scripts/bench_report.py

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache .hypothesis
