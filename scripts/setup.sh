#!/usr/bin/env bash
# Create .venv (if missing) and install ood-explain with its notebooks and test extras into it. Re-running is cheap:
# the install is skipped while pyproject.toml is unchanged since the last successful install.
# Usage: source scripts/setup.sh   (or bash scripts/setup.sh)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
if [ ! -x "$repo/.venv/bin/python" ]; then
    echo "setup: creating $repo/.venv with $($python --version)"
    "$python" -m venv "$repo/.venv"
fi
stamp="$repo/.venv/.ood-explain-installed"
wanted="$(sha256sum "$repo/pyproject.toml" | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "setup: installing ood-explain[notebooks,test] into .venv (first time: a few minutes; log: .venv/install.log)"
    if ! "$repo/.venv/bin/python" -m pip install -e "$repo[notebooks,test]" > "$repo/.venv/install.log" 2>&1; then
        grep -v '^WARNING: Location' "$repo/.venv/install.log" | tail -30
        echo "setup: pip install failed; full log in $repo/.venv/install.log" >&2
        exit 1
    fi
    "$repo/.venv/bin/python" -m ipykernel install --sys-prefix --name python3 > /dev/null
    echo "$wanted" > "$stamp"
fi
