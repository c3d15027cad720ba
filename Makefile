# istiolite developer targets. Everything installs into .venv; heavy third-party builds are
# cached under ~/.cache/istiolite so repeated runs on one machine are fast.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CACHE  ?= $(HOME)/.cache/istiolite
# mypy and import-linter resolve packages from the file system, which does not know about
# setuptools' package-dir mapping; a tree of symlinks gives them the installed layout.
TYPETREE := build/typetree

.PHONY: dev test fuzz lint fmt bench typetree kube-bins images images-test kind-up kind-down e2e demo clean

dev: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

test: dev
	$(BIN)/pytest $(PYTEST_ARGS)

# The property test at length: FUZZ_EXAMPLES generated VirtualServices and DestinationRules
# that validation accepts, each pushed to a real Envoy that must take it (the default run
# tries 40).
FUZZ_EXAMPLES ?= 1000
fuzz: dev
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest tests/discovery/test_envoy_accepts_valid_config.py $(PYTEST_ARGS)

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

# Every benchmark, or BENCH=name (bench/bench_<name>.py). BENCH=istiod, the side by side with
# Istio's istiod (docs/benchmarks.md), runs only by name: it builds istiod first (tools/istiod.sh).
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

# The container images HUB/proxy:TAG and HUB/pilot:TAG (docs/images.md). The default base image
# is debootstrapped from Debian's mirror into $(CACHE)/images once; BASE_IMAGE=debian:bookworm-slim
# uses Docker Hub's instead. Unchanged sources: every layer comes from the cache, a no-op.
IMAGE_HUB  ?= istiolite
IMAGE_TAG  ?= $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' istiolite/__init__.py)
BASE_IMAGE ?= istiolite/base:bookworm
images:
	ISTIOLITE_CACHE=$(CACHE) IMAGE_HUB=$(IMAGE_HUB) IMAGE_TAG=$(IMAGE_TAG) BASE_IMAGE=$(BASE_IMAGE) \
		tools/build-images.sh

# The images tier alone: both programs run read-only as uid 1337, the init container installs
# its rules, a sidecar gets ready against pilot-discovery. `make test` runs it too when a Docker
# engine answers (cold: ~3 min to build the images, then ~12 s), and skips it otherwise.
images-test: images dev
	IMAGE_HUB=$(IMAGE_HUB) IMAGE_TAG=$(IMAGE_TAG) $(BIN)/pytest -m docker tests/images $(PYTEST_ARGS)

# istiolite on a kind cluster named `istiolite` (kubectl context kind-istiolite): the sample
# injected and ready, productpage on http://127.0.0.1:$(KIND_HOST_PORT)/productpage. Without a
# registry the kind CLI and the node image are built here and cached (docs/e2e.md);
# KIND_NODE_IMAGE=kindest/node:v1.37.0 uses kind's own image instead. Run again: updates.
KIND_HOST_PORT ?= 9080
kind-up: dev images
	KIND_HOST_PORT=$(KIND_HOST_PORT) $(BIN)/python -m e2e.kind up

kind-down: dev
	$(BIN)/python -m e2e.kind down

# The end-to-end suite on a throw-away kind cluster `istiolite-e2e`: up, e2e/ (the scenarios and
# the kind-only checks), then down. A failure keeps the logs in build/e2e-logs/; E2E_KEEP=1
# keeps the cluster too. PYTEST_ARGS reach pytest.
e2e: dev images
	$(BIN)/python -m e2e.kind e2e -- $(PYTEST_ARGS)

clean:
	rm -rf build $(VENV) .mypy_cache .ruff_cache .pytest_cache
