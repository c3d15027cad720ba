# istiolite developer targets. Everything installs into .venv; heavy third-party builds are
# cached under ~/.cache/istiolite so repeated runs on one machine are fast.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CACHE  ?= $(HOME)/.cache/istiolite
# mypy and import-linter resolve packages from the file system, which does not know about
# setuptools' package-dir mapping; a tree of symlinks gives them the installed layout.
TYPETREE := build/typetree

.PHONY: dev test lint fmt bench typetree kube-bins images e2e demo clean

dev: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

test: dev
	$(BIN)/pytest $(PYTEST_ARGS)

typetree:
	@rm -rf $(TYPETREE) && mkdir -p $(TYPETREE)/istiolite
	@for f in istiolite/*; do ln -s ../../../$$f $(TYPETREE)/istiolite/; done
	@ln -s ../../../agent $(TYPETREE)/istiolite/agent
	@ln -s ../../../discovery $(TYPETREE)/istiolite/discovery
	@ln -s ../../../install $(TYPETREE)/istiolite/install
	@ln -s ../../tests ../../bench ../../e2e ../../samples $(TYPETREE)/

lint: dev typetree
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	cd $(TYPETREE) && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p istiolite -p tests -p bench -p e2e
	cd $(TYPETREE) && ../../$(BIN)/lint-imports ../../pyproject.toml

fmt: dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: dev
	$(BIN)/python -m bench $(BENCH)

# The mesh on one machine (root): the sample in network namespaces with sidecars and
# pilot-discovery; prints productpage's address. `.venv/bin/istiolite demo down` removes it.
demo: dev
	$(BIN)/istiolite demo up

# etcd, kube-apiserver and kube-controller-manager for the `kube` test tier, built once from
# the Go module proxy into $(CACHE)/kube/<version>/bin; later runs are a no-op.
kube-bins:
	ISTIOLITE_CACHE=$(CACHE) tools/kube-bins.sh

clean:
	rm -rf build $(VENV) .mypy_cache .ruff_cache .pytest_cache
