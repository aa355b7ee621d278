"""Figures for experiment reports: render a scatter (PNG and SVG) and store both files, as a task."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from quorum.charts.scatter import render_scatter
from quorum.domain.figures import ScatterFigure
from quorum.store import ArtifactStore


@task(name="save-figure", task_run_name="figure · {key_base}", retries=2, retry_delay_seconds=[1, 2], cache_policy=NONE)
def save_figure_task(store: ArtifactStore, key_base: str, figure: ScatterFigure) -> dict[str, str]:
    """`<key_base>.png` and `<key_base>.svg`; returns their keys."""
    png, svg = render_scatter(figure)
    return {
        "plot_png": store.put_bytes(f"{key_base}.png", png, "image/png"),
        "plot_svg": store.put_bytes(f"{key_base}.svg", svg, "image/svg+xml"),
    }
