#!/usr/bin/env bash
# One prepared GPU check (issue 19): machine facts, the device tests, `ood-explain bench --breakdown`, a
# profiled training step and CIFAR-10 one-vs-rest class 0 (SimCLR, self-OECL, OECL side by side), each step
# under its own time limit, 9 minutes in all on one H100/H200. Writes OUT/gpu-report.md, OUT/gpu-check.json
# and OUT/gpu-check-work.tar.gz.
#
#   bash scripts/gpu-check.sh OUT             # on a GPU machine (carry data/cifar10-subset.npz, see README)
#   bash scripts/gpu-check.sh --dry-run OUT   # every step on the CPU at toy sizes, under 3 minutes
#
# Runs the package from this working tree (PYTHONPATH), so it need not be installed. Python: $PYTHON, else
# .venv/bin/python when present, else python3. More options: bash scripts/gpu-check.sh --help
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -n "${PYTHON:-}" ]; then
    python="$PYTHON"
elif [ -x "$repo/.venv/bin/python" ]; then
    python="$repo/.venv/bin/python"
else
    python=python3
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$python" -m ood_explain.tools.gpu_check "$@"
