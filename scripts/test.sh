#!/usr/bin/env bash
# Set up .venv, check lint, format, types and the import layers, then run the whole test suite: unit and
# end-to-end tests, then every notebook under nbval in fast mode. Test data: $OOD_EXPLAIN_DATA, by default
# ../shared/data beside the repository.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"
cd "$repo"
export OOD_EXPLAIN_DATA="${OOD_EXPLAIN_DATA:-$(cd "$repo/.." && pwd)/shared/data}"
export OOD_EXPLAIN_FAST="${OOD_EXPLAIN_FAST:-1}"
# No PNG copies of the figures under nbval (a browser per notebook: about a minute in all);
# tests/test_static_figures.py turns them on where it checks them.
export OOD_EXPLAIN_STATIC_FIGURES="${OOD_EXPLAIN_STATIC_FIGURES:-0}"
# Habits first (seconds): lint and format, types, the layers' import contract.
"$repo/.venv/bin/ruff" check ood_explain
"$repo/.venv/bin/ruff" format --check ood_explain
"$repo/.venv/bin/mypy"
"$repo/.venv/bin/lint-imports" --no-cache
exec "$repo/.venv/bin/python" -m pytest tests notebooks --nbval --nbval-sanitize-with notebooks/sanitize.cfg \
    --durations=15 "$@"
