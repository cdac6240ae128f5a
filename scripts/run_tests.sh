#!/usr/bin/env bash
# The whole test suite: lint and types, the package (Keras on the TensorFlow backend) with its doctests,
# the Keras tests again on the PyTorch and the JAX backends (KERAS_BACKEND is per process; JAX computes
# float64 only with x64 mode on), then every notebook under nbval.
source "$(dirname "$0")/_env.sh"
ruff check focal_ref tests benchmarks scripts book
ruff format --check focal_ref tests benchmarks scripts
mypy focal_ref
python -m pytest -n 2 tests "$@"
python -m pytest -n 2 --doctest-modules focal_ref -p no:cacheprovider
KERAS_BACKEND=torch python -m pytest -n 2 tests/test_keras*.py tests/test_search_keras.py -p no:cacheprovider
KERAS_BACKEND=jax JAX_ENABLE_X64=1 python -m pytest -n 2 tests/test_keras*.py tests/test_search_keras.py -p no:cacheprovider
python -m pytest -n 2 --dist loadfile --nbval book --nbval-sanitize-with book/nbval_sanitize.cfg -p no:cacheprovider
