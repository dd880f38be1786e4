"""Notebooks that start anywhere: every notebook's first code cell installs the package where it is missing
(pinned to this version) and prints what the notebook runs on; built as a wheel and installed into a fresh
environment, the package runs notebook 00 and an exercise in a folder outside the repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

import ood_explain
from ood_explain.teaching import claims, notebook

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = [
    *sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")),
    *sorted((REPO / "notebooks" / "exercises").glob("ex*.ipynb")),
    *sorted((REPO / "notebooks" / "exercises" / "solutions").glob("ex*.ipynb")),
]


def first_code_cell(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "".join(next(cell for cell in cells if cell["cell_type"] == "code")["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_starts_with_the_current_setup_cell(path):
    assert first_code_cell(path) == notebook.setup_cell(), f"run: python scripts/sync_setup_cells.py ({path.name})"


def test_the_setup_cell_pins_this_version_from_the_project_repository():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["urls"]["Repository"] == ood_explain.REPOSITORY
    assert project["tool"]["setuptools"]["dynamic"]["version"]["attr"] == "ood_explain.__version__"
    assert f"git+{ood_explain.REPOSITORY}@v{ood_explain.__version__}\"" in notebook.setup_cell()
    assert len(NOTEBOOKS) == 7 + 8  # 00-06, four exercises and their solutions


def test_setup_prints_versions_device_threads_and_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OOD_EXPLAIN_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("OOD_EXPLAIN_DOWNLOAD", raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delenv("COLAB_GPU", raising=False)
    threads = torch.get_num_threads()
    try:
        env = notebook.setup(threads=1)
    finally:
        torch.set_num_threads(threads)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"ood-explain {ood_explain.__version__} · torch {torch.__version__} · device ")
    assert "1 torch thread(s)" in lines[1] and f"preset {env['preset']}" in lines[1]
    assert lines[2].startswith(f"runs: {tmp_path / 'runs'} (a new folder: the runs will train")
    assert "downloads off (OOD_EXPLAIN_DOWNLOAD=1" in lines[3] and not env["download"]
    (tmp_path / "runs").mkdir()
    assert "finished runs there are reused" in notebook.environment_lines(env)
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-test")  # on Colab, datasets download by default
    assert notebook.downloads_allowed()
    monkeypatch.setenv("OOD_EXPLAIN_DOWNLOAD", "0")
    assert not notebook.downloads_allowed()


def test_the_package_ships_the_claims_files_the_notebooks_compare_with():
    for name in ("claims.csv", "statements.csv"):
        assert (claims.EXPECTED / name).read_bytes() == (REPO / "results" / "notebook-claims" / name).read_bytes()


# ------------------------------------------------------------------------- a fresh venv, outside the repo


def reused_site_packages(tmp_path: Path) -> Path:
    """A folder of links to this environment's packages without ood-explain: the fresh venv reuses torch and
    the notebook tools (fast, offline) but must install ood-explain itself."""
    site = Path(next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()))
    reused = tmp_path / "reused"
    reused.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if "ood_explain" in name or "ood-explain" in name or entry.suffix == ".pth" or name == "__pycache__":
            continue
        (reused / entry.name).symlink_to(entry)
    return reused


def execute(python: Path, path: Path, env: dict) -> dict:
    """Run a notebook with nbclient in the fresh venv's Python (its kernel is that Python); the executed JSON."""
    code = (
        "import sys, nbformat; from nbclient import NotebookClient; path = sys.argv[1]; "
        "nb = nbformat.read(path, as_version=4); "
        "NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': sys.argv[2]}}).execute(); "
        "nbformat.write(nb, path)"
    )
    done = subprocess.run([str(python), "-c", code, str(path), str(path.parent)], env=env, capture_output=True,
                          text=True, timeout=1200, cwd=path.parent)  # not the repository: nothing imports from it
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(path.read_text())


def outputs(executed: dict) -> str:
    texts = []
    for cell in executed["cells"]:
        for output in cell.get("outputs", []):
            texts.append("".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


@pytest.mark.slow
def test_a_wheel_in_a_fresh_venv_runs_notebook_00_and_an_exercise_outside_the_repository(tmp_path):
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(dist), str(REPO)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next(dist.glob("ood_explain-*.whl"))
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)  # pip: the reused one
    python = venv / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "reused.pth").write_text(str(reused_site_packages(tmp_path)) + "\n")
    folder = tmp_path / "my course"  # an empty folder outside the repository, a space in its name
    folder.mkdir()
    subprocess.run(["cp", "-r", str(REPO / "notebooks"), str(folder)], check=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OOD_EXPLAIN_", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}:{env['PATH']}", OOD_EXPLAIN_FAST="1", OOD_EXPLAIN_INSTALL=f"ood-explain[notebooks] @ {wheel.as_uri()}",
               PIP_NO_INDEX="1", HOME=str(tmp_path / "home"), PYTHONNOUSERSITE="1")
    env.pop("JUPYTER_PATH", None)  # the kernel is the fresh venv's own Python (ipykernel's built-in spec)
    missing = subprocess.run([str(python), "-c", "import ood_explain"], env=env, capture_output=True, cwd=folder)
    assert missing.returncode != 0  # the fresh venv starts without the package

    first = execute(python, folder / "notebooks" / "00_quickstart.ipynb", env)
    printed = outputs(first)
    assert f"installing ood-explain[notebooks] @ {wheel.as_uri()}" in printed  # the setup cell installed it
    assert (site / "ood_explain" / "teaching" / "notebook_claims" / "claims.csv").is_file()  # into the fresh venv
    runs = folder / "notebooks" / "runs" / "notebooks"
    assert f"runs: {runs} (a new folder: the runs will train" in printed and "device cpu" in printed
    assert len(list(runs.rglob("metrics.json"))) == 2  # SimCLR and OECL trained there, by the venv's workers
    assert not any(cell.get("outputs") and any(o.get("output_type") == "error" for o in cell["outputs"])
                   for cell in first["cells"])

    exercise = execute(python, folder / "notebooks" / "exercises" / "solutions" / "ex01_nt_xent_solution.ipynb", env)
    printed = outputs(exercise)
    assert "installing" not in printed and f"ood-explain {ood_explain.__version__}" in printed  # installed already
    checks = [o for cell in exercise["cells"] for o in cell.get("outputs", []) if "correct" in "".join(o.get("text", ""))]
    assert checks and all("✅" in "".join(o["text"]) for o in checks)


def test_pick_oe_downloads_where_allowed_and_falls_back_in_one_line(monkeypatch, capsys):
    asked = []

    def offline(name, split, root=None, download=False, *args, **kwargs):
        asked.append(download)
        message = f"could not download {name!r} into /data: no network (URLError)" if download else "not here"
        raise notebook.data.DatasetNotFoundError(message + "\nsecond line")

    monkeypatch.setattr(notebook.data, "load_dataset", offline)
    monkeypatch.setenv("OOD_EXPLAIN_DOWNLOAD", "1")
    assert notebook.pick_oe("cifar100") == "photos"
    assert capsys.readouterr().out == (
        "OE dataset 'cifar100': could not download 'cifar100' into /data: no network (URLError); using 'photos' instead\n"
    )
    monkeypatch.setenv("OOD_EXPLAIN_DOWNLOAD", "0")
    assert notebook.pick_oe("cifar100") == "photos" and asked == [True, False]
    assert "OE dataset 'cifar100': it is not in " in capsys.readouterr().out
    assert notebook.config("oecl", 0, preset="smoke", oe="photos").download is False
    monkeypatch.setenv("OOD_EXPLAIN_DOWNLOAD", "1")  # allowed: the runs may download; the folder stays the same
    assert notebook.config("oecl", 0, preset="smoke", oe="photos").download is True
