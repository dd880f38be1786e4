"""Figures a static viewer can show: a PNG beside every interactive plotly output.

A notebook's plotly output is ``application/vnd.plotly.v1+json``, which only a running JupyterLab (or Colab)
draws; GitHub, nbviewer, ``jupyter nbconvert --to html`` and a PDF export show nothing. With the ``figures``
extra (kaleido, which drives a Chrome or Chromium) :func:`enable` adds a PNG renderer to plotly's default:
every figure's output then carries ``image/png`` as well, which static viewers show and JupyterLab ignores in
favour of the interactive figure. The widgets add a snapshot of their figures the same way
(:func:`snapshot_html`). ``$OOD_EXPLAIN_STATIC_FIGURES``: ``auto`` (default: on when kaleido and a browser
are there), ``1`` (on, or a one-line error saying what is missing), ``0`` (off).
"""

from __future__ import annotations

import atexit
import base64
import html
import os
import shutil
import sys
import warnings
from typing import Any

from ood_explain.teaching.extras import need

VARIABLE = "OOD_EXPLAIN_STATIC_FIGURES"
EXTRA = "pip install 'ood-explain[figures]'"
RENDERER = "ood_explain_png"
WIDTH = 1000  # px of a figure without its own width; its height is its own, else plotly's 500
ON, OFF = ("1", "on", "true", "yes"), ("0", "off", "false", "no")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_state: dict[str, Any] = {"enabled": False, "server": False}


def missing() -> str | None:
    """Why PNG copies cannot be made here (kaleido or a browser missing), or None when they can."""
    try:
        import kaleido  # noqa: F401
    except ModuleNotFoundError:
        return f"kaleido is not installed ({EXTRA})"
    if not (os.environ.get("BROWSER_PATH") or any(shutil.which(name) for name in BROWSERS)):
        return "no Chrome or Chromium found for kaleido (install one, or run `plotly_get_chrome`)"
    return None


def enable(setting: str | None = None) -> str:
    """Turn PNG copies on or off as `setting` (default ``$OOD_EXPLAIN_STATIC_FIGURES``, else ``auto``) says;
    returns the status line :func:`ood_explain.teaching.notebook.setup` prints."""
    setting = (setting or os.environ.get(VARIABLE) or "auto").strip().lower()
    if setting not in ("auto", *ON, *OFF):
        raise ValueError(f"{VARIABLE} must be auto, 1 or 0, got {setting!r}")
    reason = "off" if setting in OFF else missing()
    if reason is not None and setting in ON:
        raise RuntimeError(f"{VARIABLE}={setting}: static figures need {reason}")
    _state["enabled"] = reason is None
    status = (
        "static figures: a PNG beside each figure, for GitHub, nbviewer and HTML exports"
        if reason is None
        else f"static figures: {reason if reason != 'off' else f'off ({VARIABLE}=0)'}"
    )
    if reason is not None and "plotly.io" not in sys.modules:  # nothing to undo: leave plotly unimported
        return status
    pio = need("plotly.io")
    names = [name for name in pio.renderers.default.split("+") if name and name != RENDERER]
    if reason is None:
        pio.renderers[RENDERER] = _png_renderer()
        names.append(RENDERER)
    pio.renderers.default = "+".join(names)
    return status


def enabled() -> bool:
    return bool(_state["enabled"])


def png(figure: Any) -> str:
    """`figure` (a plotly Figure, FigureWidget or its dict) as a base64 PNG, WIDTH wide unless it sets its own."""
    pio = need("plotly.io")
    _start_server()
    layout = (figure.to_dict() if hasattr(figure, "to_dict") else figure).get("layout", {})
    with warnings.catch_warnings():  # kaleido's server ignores plotly's per-call options, and says so each time
        warnings.simplefilter("ignore", UserWarning)
        image = pio.to_image(figure, format="png", width=layout.get("width") or WIDTH, height=layout.get("height"))
    return base64.b64encode(image).decode()


def snapshot_html(description: str, figures: list[Any]) -> str:
    """An HTML fallback for a widget: its description and, with static figures on, a PNG of each figure."""
    images = "".join(f'<img src="data:image/png;base64,{png(f)}" style="max-width:100%">' for f in figures)
    return f"<p>{html.escape(description)}</p>" + (images if enabled() else "")


def _png_renderer() -> Any:
    renderers = need("plotly.io.base_renderers")

    class Renderer(renderers.PngRenderer):  # type: ignore[name-defined]
        """plotly's PNG renderer through one kaleido browser per kernel, the width of :func:`png`."""

        def to_mimebundle(self, fig_dict: dict) -> dict:
            try:
                return {"image/png": png(fig_dict)}
            except Exception as error:  # the interactive figure must still show: say why the PNG is missing
                print(
                    f"static figure not made ({type(error).__name__}: {str(error).splitlines()[0][:160]})",
                    file=sys.stderr,
                )
                return {}

    return Renderer()


def _start_server() -> None:
    """Start kaleido's browser once per process (a PNG then takes well under a second instead of ~5 s)."""
    if _state["server"]:
        return
    import kaleido

    kaleido.start_sync_server(silence_warnings=True)
    atexit.register(kaleido.stop_sync_server, silence_warnings=True)
    _state["server"] = True
