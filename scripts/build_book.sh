#!/usr/bin/env bash
# Build the book into _build/html, offline, with warnings as errors.
source "$(dirname "$0")/_env.sh"
python scripts/make_colab.py   # the Colab editions (colab/), written from the book's notebooks
jupyter-book build . -W -n --keep-going "$@"
echo "open _build/html/index.html"
