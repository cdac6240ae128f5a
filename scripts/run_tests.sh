#!/usr/bin/env bash
# The whole test suite: the package (Keras on the TensorFlow backend), the Keras tests again on the
# PyTorch backend (KERAS_BACKEND is per process), then every notebook under nbval.
source "$(dirname "$0")/_env.sh"
python -m pytest -n 2 tests "$@"
KERAS_BACKEND=torch python -m pytest -n 2 tests/test_keras.py -p no:cacheprovider
python -m pytest -n 2 --dist loadfile --nbval book --nbval-sanitize-with book/nbval_sanitize.cfg -p no:cacheprovider
