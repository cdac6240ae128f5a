#!/usr/bin/env bash
# Build the book into _build/html, offline, with warnings as errors.
source "$(dirname "$0")/_env.sh"
jupyter-book build . -W -n --keep-going "$@"
echo "open _build/html/index.html"
