# The two commands of the README: `make demo` and `make test`. CI (.ci/run) also runs the fast
# tier on the oldest stack (`make test-oldest`) and on JAX without TensorFlow (`make test-jax`).
# Both create .venv if it is missing and (re)install the package, on exactly the tested stack of
# requirements/locked.txt, when setup.py or the lock file changes (BUILD.md, "The build").
PYTHON ?= python3
VENV ?= .venv
# Constraints: the exact versions to install (the ranges themselves are in setup.py).
LOCK ?= requirements/locked.txt
# The TensorFlow flavour and the other extras of a development install.
EXTRAS ?= tensorflow-cpu,all,dev,jax
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The fast tier, the one run on the oldest supported stack and on JAX: keras-aux's colocated unit
# tests and the install checks.
FAST_TIER ?= keras_aux tests/test_install.py -m "not integration"
# The integration tier (the `integration` mark, conftest.py): the trainers, benchmarks' smoke
# runs, save/serve and multi-worker runs of tests/, and the slow colocated tests (TensorFlow and
# JAX in one process each, every method on two replicas). `make test` runs the two tiers one
# after the other, each under 10 minutes on 2 cores.
INTEGRATION_TIER ?= keras_aux tests -m integration
# pytest-xdist workers: one per core, at most 4 (each imports TensorFlow). The suite is mostly
# single-threaded tracing, so two workers on two cores halve its time. `PYTEST_WORKERS=0` runs
# it in one process. `worksteal`: a worker that runs out takes queued tests from the other,
# so a few minute-long tests near the end do not leave a core idle.
PYTEST_WORKERS ?= auto
PYTEST := -m pytest -n $(PYTEST_WORKERS) --maxprocesses=4 --dist worksteal

# The JAX tier's extras: everything but a TensorFlow flavour and `tfds` (its builders are
# TensorFlow-only), so that no TensorFlow is installed.
JAX_EXTRAS ?= jax,audio,tuning,sklearn,trainers,dev

.PHONY: install demo test test-oldest test-jax lint format benchmarks clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# pip byte-compiles every module at install (half the install's time): it is worth it, since
# with PYTHONDONTWRITEBYTECODE set (as on our machines) every process would compile what it
# imports again (5 s more per TensorFlow import, in each test worker and subprocess).
$(STAMP): $(PY) setup.py $(LOCK)
	$(PY) -m pip install --quiet -c $(LOCK) -e ".[$(EXTRAS)]"
	touch $(STAMP)

install: $(STAMP)

# Trains the genre LSTM on a synthetic set with λ = 0 and λ = 10 (about a minute on 2 CPU cores),
# exports the run with the better validation accuracy as a SavedModel that takes raw audio and
# its sample rate, and classifies five test clips with it (docs/reconstruction.md#serving).
demo: install
	$(PY) -m trainers.train_genre --dataset=demo

test: install
	$(PY) -m ruff check .
	$(PY) $(PYTEST) $(FAST_TIER)
	$(PY) $(PYTEST) $(INTEGRATION_TIER)

# The fast tier on the oldest versions the ranges of setup.py allow (requirements/oldest.txt),
# in its own virtualenv. No `jax` extra there: jax needs numpy 2, TF 2.16 numpy 1.
test-oldest:
	$(MAKE) install VENV=.venv-oldest LOCK=requirements/oldest.txt EXTRAS=tensorflow-cpu,all,dev
	.venv-oldest/bin/python $(PYTEST) $(FAST_TIER)

# The fast tier on the JAX backend in a virtualenv WITHOUT TensorFlow (requirements/locked-jax.txt):
# keras-aux installs, imports and works there; tests that need TensorFlow skip, saying so
# (conftest.py). KERAS_AUX_TEST_TIER=jax makes tests/test_install.py check that TensorFlow really
# is absent.
test-jax:
	$(MAKE) install VENV=.venv-jax LOCK=requirements/locked-jax.txt EXTRAS=$(JAX_EXTRAS)
	KERAS_BACKEND=jax KERAS_AUX_TEST_TIER=jax .venv-jax/bin/python $(PYTEST) $(FAST_TIER)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

benchmarks: install
	$(PY) -m benchmarks.step_overhead

clean:
	rm -rf $(VENV) .venv-oldest .venv-jax *.egg-info .pytest_cache .ruff_cache
