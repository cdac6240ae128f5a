#!/usr/bin/env bash
# The whole test suite: the package (Keras on the TensorFlow backend), the Keras tests again on the
# PyTorch and the JAX backends (KERAS_BACKEND is per process; JAX computes float64 only with x64 mode on),
# then every notebook under nbval.
source "$(dirname "$0")/_env.sh"
python -m pytest -n 2 tests "$@"
KERAS_BACKEND=torch python -m pytest -n 2 tests/test_keras.py -p no:cacheprovider
KERAS_BACKEND=jax JAX_ENABLE_X64=1 python -m pytest -n 2 tests/test_keras.py -p no:cacheprovider
python -m pytest -n 2 --dist loadfile --nbval book --nbval-sanitize-with book/nbval_sanitize.cfg -p no:cacheprovider
