"""Interactive explorers for JupyterLab: ipywidgets controls driving plotly ``FigureWidget`` figures.

* :class:`NormDashboard`: pick class, method, score and epoch of tracked runs; see the ID and OOD
  score histograms and the AUROC (now and over epochs).
* :class:`UmapExplorer`: UMAP maps of raw z, normalized ẑ = z/‖z‖ and backbone h, coloured by ID/OOD or
  by ‖z‖; hovering a point shows its image.
* :class:`AugmentationExplorer`: sliders for crop scale, colour-jitter strength and rotation, showing
  random SimCLR views.

Each explorer is a plain object: ``.widget`` is the ipywidgets box to display (a notebook cell can also
end with the object itself), the controls and figures are attributes, and the callbacks are ordinary
methods (``update``, ``on_hover``, ``show``) so tests can drive them without a browser. Static
figure helpers (:func:`augmentation_grid`, :func:`rotation_grid`) serve the notebooks directly.
"""

from __future__ import annotations

import base64
import copy
import html
import io
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from ood_explain.core import augment
from ood_explain.core.augment import AugmentConfig
from ood_explain.core.metrics import auroc
from ood_explain.experiments.runs import evaluation_sets, id_and_ood, load_data
from ood_explain.teaching import static_figures
from ood_explain.teaching.extras import need
from ood_explain.teaching.viz import ID_COLOR, OOD_COLOR, SCORE_LABELS, Figure

ROTATIONS = (0, 90, 180, 270)

W = need("ipywidgets")
go = need("plotly.graph_objects")
FigureWidget: TypeAlias = Any  # a plotly.graph_objects.FigureWidget (plotly is imported through need())


# ------------------------------------------------------------------------------------- image helpers


def _to_uint8_hwc(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] or uint8 -> (H, W, 3) uint8."""
    x = augment.to_float(image) if image.dtype == torch.uint8 else image.float()
    x = x.clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def png_bytes(image: torch.Tensor, scale: int = 4) -> bytes:
    """One image (C, H, W) as PNG bytes, enlarged `scale` times with nearest-neighbour pixels."""
    picture = Image.fromarray(_to_uint8_hwc(image))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def montage(grid: torch.Tensor, pad: int = 2) -> np.ndarray:
    """A (rows, cols, C, H, W) batch of images in [0, 1] -> one (H', W', 3) uint8 picture with white
    gutters of `pad` pixels."""
    rows, cols, _, h, w = grid.shape
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            top, left = pad + r * (h + pad), pad + c * (w + pad)
            canvas[top : top + h, left : left + w] = _to_uint8_hwc(grid[r, c])
    return canvas


def _data_uri(picture: np.ndarray, scale: int = 3) -> str:
    image = Image.fromarray(picture)
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def keep_restorable(figure: FigureWidget) -> None:
    """Copy a FigureWidget's current traces and layout into the widget state it is restored from.

    plotly sends later changes (added traces, restyles) to the views as messages only, so the state a
    frontend restores a FigureWidget from (reopening a notebook whose kernel still runs, or saved widget
    state) would otherwise hold the figure as it was when the widget was created: often an empty plot."""
    if hasattr(figure, "_widget_data") and hasattr(figure, "_layout_obj"):
        figure._widget_data = copy.deepcopy(figure._data)
        figure._widget_layout = copy.deepcopy(figure._layout_obj._props)


def _grid_figure(
    grid: torch.Tensor,
    column_names: list[str],
    row_names: list[str],
    title: str,
    caption: str = "",
    scale: int | None = None,
    pad: int = 2,
    widget: bool = False,
    row_title: str = "image",
    column_title: str = "view",
) -> Figure:
    """An image montage as a plotly figure: one tick label per column and per row, and `caption` (what the
    columns mean) as a line of text under the picture. No legend: an image trace has nothing a legend
    square could stand for. `scale` enlarges the pixels (default: as large as fits about 880 px of width,
    at most 4x)."""
    picture = montage(grid, pad)
    _, _, _, h, w = grid.shape
    scale = scale or max(1, min(4, 880 // picture.shape[1]))
    cell_w, cell_h = (w + pad) * scale, (h + pad) * scale
    figure = (go.FigureWidget if widget else go.Figure)()
    figure.add_trace(go.Image(source=_data_uri(picture, scale), hoverinfo="skip", name="images"))
    if caption:
        figure.add_annotation(
            text=caption,
            xref="paper",
            yref="paper",
            x=0,
            y=-0.02,
            yshift=-40,
            xanchor="left",
            yanchor="top",
            showarrow=False,
            align="left",
        )
    figure.update_layout(
        title=title,
        showlegend=False,
        margin=dict(l=70, r=10, t=90, b=50 + (40 if caption else 0)),
        width=max(420, picture.shape[1] * scale + 100),
        height=max(340, picture.shape[0] * scale + 180),
        xaxis=dict(
            title=column_title,
            tickvals=[pad * scale + (i + 0.5) * cell_w - pad * scale / 2 for i in range(len(column_names))],
            ticktext=column_names,
            showgrid=False,
            zeroline=False,
        ),
        yaxis=dict(
            title=row_title,
            tickvals=[pad * scale + (i + 0.5) * cell_h - pad * scale / 2 for i in range(len(row_names))],
            ticktext=[str(name) for name in row_names],
            showgrid=False,
            zeroline=False,
        ),
    )
    return figure


def _row_names(images: torch.Tensor, row_labels) -> list[str]:
    if row_labels is None:
        return [f"#{i}" for i in range(len(images))]
    names = [
        str(int(v)) if not isinstance(v, str) else v
        for v in (row_labels.tolist() if hasattr(row_labels, "tolist") else row_labels)
    ]
    if len(names) != len(images):
        raise ValueError(f"row_labels has {len(names)} entries for {len(images)} images")
    return names


def views_grid(
    images: torch.Tensor, n_views: int = 6, config: AugmentConfig = AugmentConfig(), seed: int = 0, rotation: int = 0
) -> torch.Tensor:
    """(N, 1 + n_views, C, H, W) floats: each image, then `n_views` random SimCLR views of it, all
    rotated by `rotation` degrees (a multiple of 90) after augmentation, as in self-OECL."""
    if rotation % 90:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation}")
    generator = augment.make_generator(seed)
    originals = augment.to_float(images)
    views = [augment.simclr_view(images, generator, config) for _ in range(n_views)]
    columns = [augment.rotate90(x, rotation // 90) for x in [originals, *views]]
    return torch.stack(columns, dim=1)


def augmentation_grid(
    images: torch.Tensor,
    n_views: int = 6,
    config: AugmentConfig = AugmentConfig(),
    seed: int = 0,
    rotation: int = 0,
    title: str = "Random SimCLR views",
    widget: bool = False,
    row_labels=None,
    row_title: str = "image",
) -> Figure:
    """A figure of `images` (uint8 (N, C, H, W)): the original in column 0, then random views. Rows are
    labelled #0, #1, ... or by `row_labels` (e.g. the digits), under the axis title `row_title`."""
    grid = views_grid(images, n_views, config, seed, rotation)
    columns = ["original"] + [f"view {i + 1}" for i in range(n_views)]
    caption = "first column: the image itself; the others: random views t(x), t ~ T"
    return _grid_figure(
        grid, columns, _row_names(images, row_labels), title, caption, widget=widget, row_title=row_title
    )


def rotation_grid(
    images: torch.Tensor, title: str = "self-OECL: rotations of each image", row_labels=None, row_title: str = "image"
) -> Figure:
    """Each image (uint8 (N, C, H, W)) at 0, 90, 180 and 270 degrees; 0/90 are ID instances and
    180/270 are self-generated outliers (OE) in self-OECL. Rows are labelled #0, #1, ... or by
    `row_labels` (e.g. the digits 0, 6, 8), under the axis title `row_title`."""
    x = augment.to_float(images)
    grid = torch.stack([augment.rotate90(x, k) for k in range(4)], dim=1)
    columns = ["0° (ID)", "90° (ID)", "180° (OE)", "270° (OE)"]
    caption = "0° and 90°: ID instances; 180° and 270°: self-made outliers (OE, their ‖z‖ is pulled to 0)"
    return _grid_figure(
        grid, columns, _row_names(images, row_labels), title, caption, row_title=row_title, column_title="rotation"
    )


# ----------------------------------------------------------------------------- augmentation explorer


RUN_THE_CELL = (
    "The figures are drawn by the running Python kernel: after reopening the notebook, run this cell again "
    "to use the controls."
)


class Explorer:
    """What the three explorers share: shown as their ipywidgets box (``self.widget``), with a fallback for
    wherever widgets cannot run (a notebook reopened without its kernel, GitHub, nbviewer, an HTML export):
    a plain-text and an HTML description that says to run the cell, and, with static figures on
    (:mod:`ood_explain.teaching.static_figures`), a PNG snapshot of each of its figures as the cell left them."""

    DESCRIPTION = ""
    widget: Any

    def figures(self) -> list:
        """The plotly figures the snapshot shows."""
        return []

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle = self.widget._repr_mimebundle_(include=include, exclude=exclude) or {}
        text = f"{self.DESCRIPTION} {RUN_THE_CELL}"
        bundle["text/plain"] = text
        bundle["text/html"] = static_figures.snapshot_html(text, self.figures())
        return bundle


class AugmentationExplorer(Explorer):
    """Sliders for the SimCLR family T (crop scale, jitter strength, grayscale), a rotation applied after
    augmentation, and the random seed; the figure shows each image and `n_views` views of it.

    The views are drawn by the running kernel. A notebook reopened later shows the widget from its saved
    state (or, without widget state, the plain-text and HTML fallback of the output): both say to run the
    cell again, instead of leaving sliders over a plot that cannot change."""

    DESCRIPTION = "Augmentation explorer (sliders for crop, jitter and rotation)."

    def __init__(self, images: torch.Tensor, n_views: int = 6, seed: int = 0) -> None:
        self.images = images
        self.n_views = n_views
        style = {"description_width": "150px"}
        layout = W.Layout(width="460px")
        self.crop_scale = W.FloatRangeSlider(
            value=(0.08, 1.0),
            min=0.02,
            max=1.0,
            step=0.02,
            description="crop area fraction",
            style=style,
            layout=layout,
        )
        self.jitter = W.FloatSlider(
            value=0.4, min=0.0, max=1.0, step=0.05, description="jitter strength s", style=style, layout=layout
        )
        self.jitter_p = W.FloatSlider(
            value=0.8, min=0.0, max=1.0, step=0.05, description="jitter probability", style=style, layout=layout
        )
        self.grayscale_p = W.FloatSlider(
            value=0.2, min=0.0, max=1.0, step=0.05, description="grayscale prob.", style=style, layout=layout
        )
        self.rotation = W.SelectionSlider(
            options=list(ROTATIONS), value=0, description="rotation (°)", style=style, layout=layout
        )
        self.seed = W.IntSlider(value=seed, min=0, max=50, description="random draw (seed)", style=style, layout=layout)
        self.controls = [self.crop_scale, self.jitter, self.jitter_p, self.grayscale_p, self.rotation, self.seed]
        # built from the finished figure, so the state the widget is restored from holds the views too
        self.figure = go.FigureWidget(augmentation_grid(images, n_views, self.config(), seed, title=self._title()))
        for control in self.controls:
            control.observe(self.update, names="value")
        self.note = W.HTML(f"<span style='color:#666'>Note: {html.escape(RUN_THE_CELL)}</span>")
        self.widget = W.VBox([W.HBox([W.VBox(self.controls[:3]), W.VBox(self.controls[3:])]), self.note, self.figure])

    def config(self) -> AugmentConfig:
        """The AugmentConfig the sliders describe: brightness = contrast = saturation = s, hue = s/4."""
        s = self.jitter.value
        return AugmentConfig(
            crop_scale=tuple(self.crop_scale.value),
            brightness=s,
            contrast=s,
            saturation=s,
            hue=min(0.5, s / 4),
            jitter_p=self.jitter_p.value,
            grayscale_p=self.grayscale_p.value,
        )

    def _title(self) -> str:
        low, high = self.crop_scale.value
        return (
            f"SimCLR views: crop area {low:.2f}–{high:.2f}, jitter s = {self.jitter.value:.2f}, "
            f"rotation {self.rotation.value}°"
        )

    def update(self, change=None) -> None:
        """Redraw the views for the current slider values (the callback of every control)."""
        fresh = augmentation_grid(
            self.images, self.n_views, self.config(), self.seed.value, rotation=self.rotation.value
        )
        with self.figure.batch_update():
            self.figure.data[0].source = fresh.data[0].source
            self.figure.layout.title.text = self._title()
        keep_restorable(self.figure)

    def figures(self) -> list:
        return [self.figure]


# ------------------------------------------------------------------------------------- norm dashboard


class NormDashboard(Explorer):
    """Pick class, method, score and epoch; see histograms of the score for ID and OOD test images,
    the AUROC at that epoch, and the AUROC over the tracked epochs.

    `runs`: :class:`ood_explain.experiments.Run` objects (tracked runs give one slider stop per tracked
    epoch; untracked ones only their final epoch). `scores`: the scores the dropdown offers (default: every
    score of the runs), so a notebook can keep out the ones it has not introduced yet.
    """

    DESCRIPTION = "Norm dashboard (class, method, score and epoch; ID and OOD histograms, AUROC over epochs)."

    def __init__(self, runs: list, score: str = "norm", scores: list[str] | None = None) -> None:
        if not runs:
            raise ValueError("NormDashboard needs at least one run")
        self.allowed_scores = scores
        self.runs = {(run.normal_class, run.label): run for run in runs}
        self._tables: dict[tuple[int, str], pd.DataFrame] = {}
        missing = sorted(set(scores or ()) - {s for key in self.runs for s in self._scores(key, restricted=False)})
        if missing:
            raise ValueError(
                f"no run here has per-epoch scores {', '.join(missing)}; tracked epochs score "
                f"{', '.join(self._scores(next(iter(self.runs)), restricted=False))} (the ensemble scores only "
                "the final model: run.scores)"
            )
        classes = sorted({c for c, _ in self.runs})
        first = next(iter(self.runs))
        self.class_control = W.Dropdown(options=classes, value=first[0], description="class")
        self.method_control = W.Dropdown(options=self._methods(first[0]), value=first[1], description="method")
        scores = self._scores(first)
        self.score_control = W.Dropdown(
            options=[(SCORE_LABELS.get(s, s), s) for s in scores],
            value=score if score in scores else scores[0],
            description="score",
        )
        epochs = self._epochs(first)
        self.epoch_control = W.SelectionSlider(
            options=epochs, value=epochs[-1], description="epoch", continuous_update=False
        )
        self.summary = W.HTML()
        self.histogram = go.FigureWidget()
        for name, color in (("ID test", ID_COLOR), ("OOD test", OOD_COLOR)):
            self.histogram.add_trace(
                go.Histogram(x=[], name=name, marker_color=color, opacity=0.6, histnorm="probability density")
            )
        self.histogram.update_layout(
            barmode="overlay",
            yaxis_title="density",
            legend_title="test set",
            height=420,
            width=470,
            margin=dict(t=90, b=50, r=10),
        )
        self.curve = go.FigureWidget()
        self.curve.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="AUROC per tracked epoch"))
        self.curve.add_trace(
            go.Scatter(
                x=[],
                y=[],
                mode="markers",
                name="selected epoch",
                marker=dict(size=14, color=OOD_COLOR, symbol="circle-open", line_width=3),
            )
        )
        self.curve.add_hline(y=0.5, line_dash="dot", line_color="gray", annotation_text="chance")
        self.curve.update_layout(
            xaxis_title="epoch",
            yaxis_title="AUROC (ID = positive)",
            legend_title="",
            yaxis_range=[0, 1.02],
            height=420,
            width=430,
            margin=dict(t=90, b=50, r=10),
            legend=dict(orientation="h", y=-0.25),
        )
        self._busy = False
        self.class_control.observe(self._class_changed, names="value")
        self.method_control.observe(self._run_changed, names="value")
        self.score_control.observe(self.update, names="value")
        self.epoch_control.observe(self.update, names="value")
        controls = W.HBox([self.class_control, self.method_control, self.score_control])
        figures = W.HBox([self.histogram, self.curve], layout=W.Layout(flex_flow="row wrap"))
        self.widget = W.VBox([controls, self.epoch_control, self.summary, figures])
        self.update()

    # the data behind the controls
    def _methods(self, normal_class: int) -> list[str]:
        return [label for c, label in self.runs if c == normal_class]

    def table(self, key: tuple[int, str] | None = None) -> pd.DataFrame:
        """Per-epoch scores of the selected run (or of `key` = (class, method label))."""
        key = key or self.key
        if key not in self._tables:
            self._tables[key] = self.runs[key].epochs_table()
        return self._tables[key]

    def _scores(self, key: tuple[int, str], restricted: bool = True) -> list[str]:
        """The per-epoch scores of a run, those the notebook allowed (`restricted`) or all of them."""
        fixed = {"epoch", "index", "is_id", "label"}
        allowed = self.allowed_scores if restricted else None
        return [c for c in self.table(key).columns if c not in fixed and (allowed is None or c in allowed)]

    def _epochs(self, key: tuple[int, str]) -> list[int]:
        return sorted(int(e) for e in self.table(key)["epoch"].unique())

    @property
    def key(self) -> tuple[int, str]:
        return self.class_control.value, self.method_control.value

    # callbacks
    def _class_changed(self, change=None) -> None:
        methods = self._methods(self.class_control.value)
        current = self.method_control.value
        self._busy = True
        self.method_control.options = methods
        self.method_control.value = current if current in methods else methods[0]
        self._busy = False
        self._run_changed()

    def _run_changed(self, change=None) -> None:
        if self._busy:
            return
        self._busy = True
        scores = self._scores(self.key)
        score = self.score_control.value
        self.score_control.options = [(SCORE_LABELS.get(s, s), s) for s in scores]
        self.score_control.value = score if score in scores else scores[0]
        epochs = self._epochs(self.key)
        epoch = self.epoch_control.value
        self.epoch_control.options = epochs
        self.epoch_control.value = min(epochs, key=lambda e: abs(e - epoch))
        self._busy = False
        self.update()

    def scores_at(self, epoch: int | None = None, score: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ID, OOD) values of the selected score at the selected epoch."""
        table = self.table()
        return id_and_ood(
            table[table["epoch"] == (epoch or self.epoch_control.value)], score or self.score_control.value
        )

    def update(self, change=None) -> None:
        """Redraw both figures and the AUROC line for the current selection."""
        if self._busy:
            return
        score, epoch = self.score_control.value, self.epoch_control.value
        scores_id, scores_ood = self.scores_at(epoch, score)
        value = auroc(scores_id, scores_ood)
        low, high = float(min(scores_id.min(), scores_ood.min())), float(max(scores_id.max(), scores_ood.max()))
        size = (high - low) / 40 or 1.0
        label = SCORE_LABELS.get(score, score)
        with self.histogram.batch_update():
            for trace, values in zip(self.histogram.data, (scores_id, scores_ood)):
                trace.x = values
                trace.xbins = dict(start=low, end=high + size, size=size)
            self.histogram.layout.xaxis.title.text = label
            self.histogram.layout.title.text = (
                f"{self.method_control.value}, class {self.class_control.value}, "
                f"epoch {epoch}: AUROC {value:.3f}<br>"  # two lines: fits 470 px
                f"<sup>{len(scores_id)} + {len(scores_ood)} test images</sup>"
            )
        table = self.table()
        per_epoch = [(int(e), auroc(*id_and_ood(part, score))) for e, part in table.groupby("epoch")]
        with self.curve.batch_update():
            self.curve.data[0].x = [e for e, _ in per_epoch]
            self.curve.data[0].y = [a for _, a in per_epoch]
            self.curve.data[1].x = [epoch]
            self.curve.data[1].y = [value]
            self.curve.layout.title.text = f"AUROC of {label} over training"
        keep_restorable(self.histogram)
        keep_restorable(self.curve)
        verdict = "inverted: OOD scores higher than ID" if value < 0.5 else "ID scores higher than OOD"
        self.summary.value = (
            f"<b>AUROC {value:.3f}</b> ({verdict}); mean score ID {scores_id.mean():.3g}, "
            f"OOD {scores_ood.mean():.3g}; {len(scores_id)} ID and {len(scores_ood)} OOD test images"
        )
        self.auroc = value

    def figures(self) -> list:
        return [self.histogram, self.curve]


# -------------------------------------------------------------------------------------- UMAP explorer


SPACES = {"z": "raw z (projection head)", "z_hat": "normalized ẑ = z/‖z‖", "h": "backbone h"}


class UmapExplorer(Explorer):
    """UMAP maps of the features of ID and OOD images: raw z, normalized ẑ and backbone h, coloured by
    ID/OOD or by ‖z‖. Hovering over a point shows its image (``on_hover`` -> ``show``)."""

    DESCRIPTION = "UMAP explorer (raw z, normalized ẑ or backbone h of ID and OOD test images; hover for the image)."

    def __init__(
        self,
        model,
        id_images: torch.Tensor,
        ood_images: torch.Tensor,
        id_labels: torch.Tensor | None = None,
        ood_labels: torch.Tensor | None = None,
        n_neighbors: int = 15,
        seed: int = 0,
    ) -> None:
        from ood_explain.core.scores import extract_features

        self.images = torch.cat([id_images, ood_images])
        self.is_id = np.concatenate([np.ones(len(id_images), bool), np.zeros(len(ood_images), bool)])
        labels = [id_labels, ood_labels]
        self.labels = np.concatenate(
            [
                np.asarray(known) if known is not None else np.full(n, -1)
                for known, n in zip(labels, (len(id_images), len(ood_images)))
            ]
        )
        features = extract_features(model, self.images)
        z = features.z
        self.features = {"z": z.numpy(), "z_hat": F.normalize(z, dim=1).numpy(), "h": features.h.numpy()}
        self.norms = z.norm(dim=1).numpy()
        self.n_neighbors, self.seed = n_neighbors, seed
        self.embeddings: dict[str, np.ndarray] = {}
        self.space = W.ToggleButtons(
            options=[(v, k) for k, v in SPACES.items()],
            value="z",
            description="features",
            style={"button_width": "210px"},
        )
        self.color = W.ToggleButtons(
            options=["ID / OOD", "‖z‖"], value="ID / OOD", description="colour by", style={"button_width": "210px"}
        )
        self.preview = W.Image(format="png", width=112, height=112)
        self.caption = W.HTML()
        self.figure = go.FigureWidget()
        for name, symbol in (("ID test", "circle"), ("OOD test", "x")):
            self.figure.add_trace(
                go.Scatter(
                    x=[],
                    y=[],
                    mode="markers",
                    name=name,
                    marker=dict(symbol=symbol, size=6, opacity=0.75),
                    hovertemplate="‖z‖ = %{customdata[1]:.2f}<br>label %{customdata[2]}"
                    "<extra>%{fullData.name} #%{customdata[0]}</extra>",
                )
            )
        self.figure.update_layout(
            xaxis_title="UMAP 1",
            yaxis_title="UMAP 2",
            legend_title="test set",
            height=520,
            width=640,
            margin=dict(t=90),
        )
        for trace in self.figure.data:
            trace.on_hover(self.on_hover)
        self.space.observe(self.update, names="value")
        self.color.observe(self.update, names="value")
        self.widget = W.VBox(
            [
                self.space,
                self.color,
                W.HBox([self.figure, W.VBox([self.preview, self.caption])], layout=W.Layout(flex_flow="row wrap")),
            ]
        )
        self.update()
        self.show(0)
        self.caption.value = "hover over a point to see its image<br>" + self.caption.value

    @classmethod
    def from_run(cls, run, per_side: int = 300, **kwargs) -> UmapExplorer:
        """An explorer of a finished :class:`ood_explain.teaching.notebook.Run`: its model and `per_side` ID and
        OOD test images (seeded subsets, the same ones the run's tracked epochs use)."""
        evaluation = evaluation_sets(load_data(run.config).split, per_side, 0, run.config.seed)
        id_test, ood_test = evaluation.id_test, evaluation.ood_test
        return cls(run.model, id_test.images, ood_test.images, id_test.labels, ood_test.labels, **kwargs)

    def embedding(self, space: str) -> np.ndarray:
        """The 2-D UMAP embedding of one feature space (computed once, then cached)."""
        if space not in self.embeddings:
            umap = need("umap")

            reducer = umap.UMAP(n_neighbors=self.n_neighbors, min_dist=0.1, random_state=self.seed, n_jobs=1)
            self.embeddings[space] = reducer.fit_transform(self.features[space])
        return self.embeddings[space]

    def update(self, change=None) -> None:
        """Redraw the map for the selected feature space and colouring."""
        xy = self.embedding(self.space.value)
        by_norm = self.color.value == "‖z‖"
        low, high = float(self.norms.min()), float(self.norms.max())
        with self.figure.batch_update():
            for trace, mask, color in zip(self.figure.data, (self.is_id, ~self.is_id), (ID_COLOR, OOD_COLOR)):
                index = np.flatnonzero(mask)
                trace.x, trace.y = xy[index, 0], xy[index, 1]
                trace.customdata = np.stack([index, self.norms[index], self.labels[index]], axis=1)
                if by_norm:
                    trace.marker.color = self.norms[index]
                    trace.marker.colorscale = "Viridis"
                    trace.marker.cmin, trace.marker.cmax = low, high
                    trace.marker.showscale = trace.name == "ID test"
                    trace.marker.colorbar = dict(title="‖z‖", len=0.65, y=0, yanchor="bottom")  # below the legend
                else:
                    trace.marker.color = color
                    trace.marker.showscale = False
            self.figure.layout.title.text = f"UMAP of {SPACES[self.space.value]}, coloured by {self.color.value}"
        keep_restorable(self.figure)

    def on_hover(self, trace, points, state=None) -> None:
        """plotly hover callback: show the image of the first hovered point."""
        if points is not None and points.point_inds:
            self.show(int(trace.customdata[points.point_inds[0]][0]))

    def show(self, index: int) -> None:
        """Show image `index` (position in ID images followed by OOD images) beside the map."""
        self.preview.value = png_bytes(self.images[index])
        kind = "ID" if self.is_id[index] else "OOD"
        self.caption.value = (
            f"<b>{kind}</b> test image #{index}, label {self.labels[index]}, ‖z‖ = {self.norms[index]:.2f}"
        )
        self.shown = index

    def figures(self) -> list:
        return [self.figure]
