# Sourced by the README's two commands: make .venv from requirements.txt (once), install focal_ref into it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ requirements-audit.txt -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  # the audited peers, beside the pinned stack without their own dependencies (see the file's comment)
  .venv/bin/python -m pip install -q --no-deps -r requirements-audit.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
export TF_CPP_MIN_LOG_LEVEL=3 TF_ENABLE_ONEDNN_OPTS=0 PYTHONHASHSEED=0
