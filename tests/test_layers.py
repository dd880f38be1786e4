"""The layers: the import contract holds (and fails on a forbidden import), and the core, the experiments
and ``ood-explain run`` work without the notebooks extra, whose absence a teaching function names."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO

TEACHING_PACKAGES = ("plotly", "umap", "ipywidgets", "jupyterlab", "anywidget")
# Run first in a fresh interpreter: the notebooks extra's packages cannot be imported, as on a core install.
BLOCK = textwrap.dedent(f"""
    import importlib.abc, sys
    class Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {TEACHING_PACKAGES!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
    sys.meta_path.insert(0, Absent())
""")


def python(code: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)


def lint_imports(root) -> subprocess.CompletedProcess:
    command = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or "lint-imports"
    return subprocess.run([command, "--no-cache", "--config", str(root / "pyproject.toml")], capture_output=True,
                          text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)


def test_the_import_contract_holds():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("core/metrics.py", "from ood_explain.experiments import runs", "ood_explain.core is not allowed to import "
                                                                      "ood_explain.experiments"),
    ("experiments/sweeps.py", "from ood_explain.teaching import viz", "ood_explain.experiments is not allowed to "
                                                                       "import ood_explain.teaching"),
    ("core/scores.py", "import plotly", "ood_explain.core is not allowed to import plotly"),
])
def test_the_import_contract_fails_on_a_forbidden_import(tmp_path, module, line, broken):
    shutil.copytree(REPO / "ood_explain", tmp_path / "ood_explain", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "ood_explain" / module, "a") as handle:
        handle.write(f"\n{line}  # forbidden\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1 and broken in done.stdout, done.stdout + done.stderr


def test_the_core_and_the_experiments_import_without_the_notebooks_extra():
    done = python("""
        import ood_explain as ox
        from ood_explain import data, methods, training, sweeps, reproduce, quickstart
        from ood_explain.tools import cli, bench
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("plotly", "umap", "ipywidgets"))
        print("loaded:", loaded, ox.nt_xent.__name__)
    """)
    assert done.returncode == 0, done.stderr
    assert "loaded: [] nt_xent" in done.stdout


@pytest.mark.slow
def test_ood_explain_run_and_quickstart_work_without_the_notebooks_extra(tmp_path):
    done = python(f"""
        from ood_explain.tools.cli import main
        code = main(["run", "--dataset", "digits", "--method", "oecl", "--oe", "photos", "--preset", "smoke",
                     "--out", {str(tmp_path / "run")!r}])
        assert code == 0, code
        code = main(["quickstart", "--preset", "smoke", "--classes", "0", "--seeds", "1",
                     "--out", {str(tmp_path / "quick")!r}])
        assert code == 0, code
    """)
    assert done.returncode == 0, done.stderr
    assert "main score norm_of_mean: AUROC" in done.stdout
    assert "figures not written: plotly is not installed" in done.stdout
    assert (tmp_path / "quick" / "results.md").exists() and not (tmp_path / "quick" / "report.html").exists()


@pytest.mark.parametrize("module", ["viz", "widgets"])
def test_a_teaching_module_without_the_extra_names_it(module):
    done = python(f"""
        try:
            from ood_explain import {module}
        except ModuleNotFoundError as error:
            print("error:", error)
    """)
    assert done.returncode == 0, done.stderr
    assert "is not installed; the figures, widgets and notebooks need the notebooks extra: " \
           "pip install 'ood-explain[notebooks]'" in done.stdout
