#!/usr/bin/env bash
# Set up .venv and run the offline quickstart: SimCLR vs self-OECL vs OECL on scikit-learn's digits.
# Prints an AUROC table and writes runs/quickstart/report.html.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"
cd "$repo"
exec "$repo/.venv/bin/ood-explain" quickstart "$@"
