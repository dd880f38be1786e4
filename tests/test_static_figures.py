"""Figures without a kernel: with the figures extra every plotly output carries a PNG and every explorer an
HTML snapshot, so GitHub, nbviewer and nbconvert's HTML show them; without it, one line says what is missing."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ood_explain import data
from ood_explain.teaching import static_figures, widgets

REPO = Path(__file__).resolve().parents[1]
pio = pytest.importorskip("plotly.io")
go = pytest.importorskip("plotly.graph_objects")
CAN_RENDER = static_figures.missing() is None
needs_kaleido = pytest.mark.skipif(not CAN_RENDER, reason=f"no static figures here: {static_figures.missing()}")


@pytest.fixture(autouse=True)
def restore_renderers():
    before = pio.renderers.default
    yield
    pio.renderers.default = before
    static_figures._state["enabled"] = False


def test_off_and_missing_say_so_in_one_line(monkeypatch):
    assert static_figures.enable("0") == "static figures: off (OOD_EXPLAIN_STATIC_FIGURES=0)"
    assert static_figures.RENDERER not in pio.renderers.default and not static_figures.enabled()
    monkeypatch.setattr(static_figures, "missing", lambda: "kaleido is not installed (pip install 'ood-explain[figures]')")
    assert static_figures.enable("auto") == "static figures: kaleido is not installed (pip install 'ood-explain[figures]')"
    with pytest.raises(RuntimeError, match="OOD_EXPLAIN_STATIC_FIGURES=1: static figures need kaleido is not installed"):
        static_figures.enable("1")
    with pytest.raises(ValueError, match="must be auto, 1 or 0, got 'sometimes'"):
        static_figures.enable("sometimes")


def test_without_static_figures_an_explorer_still_says_run_the_cell():
    static_figures.enable("0")
    bundle = widgets.AugmentationExplorer(data.load_digits("test").images[:2], n_views=2)._repr_mimebundle_()
    assert "run this cell again" in bundle["text/html"] and "<img" not in bundle["text/html"]


@needs_kaleido
def test_a_figure_carries_a_png_and_an_explorer_a_snapshot():
    pio.renderers.default = "plotly_mimetype"  # what a JupyterLab kernel starts with
    assert static_figures.enable("1").startswith("static figures: a PNG beside each figure")
    bundle = go.Figure(go.Bar(x=[1, 2], y=[3, 4]), layout={"height": 300})._repr_mimebundle_()
    assert pio.renderers.default == f"plotly_mimetype+{static_figures.RENDERER}"
    assert "application/vnd.plotly.v1+json" in bundle  # still interactive in JupyterLab
    assert base64.b64decode(bundle["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    bundle = widgets.AugmentationExplorer(data.load_digits("test").images[:2], n_views=2)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/html"].count('<img src="data:image/png;base64,') == 1 and "run this cell again" in bundle["text/html"]


@pytest.mark.slow
@needs_kaleido
def test_an_executed_notebook_as_html_shows_every_figure_without_a_kernel(tmp_path):
    """A notebook that starts like every notebook (the setup cell), shows a figure and an explorer, executed
    by nbconvert and converted to HTML: the figure is an <img>, the explorer's output holds its snapshot."""
    import nbformat

    from ood_explain.teaching.notebook import setup_cell

    cells = [setup_cell(), "from ood_explain import viz\n\nviz.temperature_figure()",
             "from ood_explain import data, widgets\n\nwidgets.AugmentationExplorer(data.load_digits('test').images[:2], 2)"]
    path = tmp_path / "figures.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]), path)
    env = {**os.environ, "OOD_EXPLAIN_RUNS": str(tmp_path / "runs"), "OOD_EXPLAIN_STATIC_FIGURES": "1"}
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                    str(path)], env=env, check=True, capture_output=True, cwd=tmp_path)
    outputs = [o for c in json.loads(path.read_text())["cells"] for o in c.get("outputs", [])]
    assert "static figures: a PNG beside each figure" in "".join("".join(o.get("text", "")) for o in outputs)
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 1 and "image/png" in figures[0]["data"]
    explorer = next(o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {}))
    assert 'src="data:image/png;base64,' in "".join(explorer["data"]["text/html"])
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(path)], check=True,
                   capture_output=True)
    page = path.with_suffix(".html").read_text()
    assert len(re.findall(r'<img[^>]* src="data:image/png;base64,', page)) >= 1
