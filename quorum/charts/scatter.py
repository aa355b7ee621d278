"""A cost-vs-outcome scatter with its Pareto front, as PNG and SVG bytes.

Drawn on a `matplotlib.figure.Figure` with the Agg canvas (no pyplot state, safe in worker threads).
Output is reproducible: no creation date in either file, a fixed SVG id salt.
"""

from __future__ import annotations

import io

from quorum.domain.figures import ScatterFigure

COLOURS = {"reviewer": "#4c72b0", "panel": "#c44e52", "tools": "#8c8c8c", "": "#4c72b0"}


def render_scatter(figure: ScatterFigure) -> tuple[bytes, bytes]:
    """(PNG, SVG) of the figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    with matplotlib.rc_context({"svg.hashsalt": "quorum", "font.size": 9}):
        fig = Figure(figsize=(7.5, 4.8), dpi=110)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for point in figure.points:
            colour = COLOURS.get(point.kind, COLOURS[""])
            if point.y_low is not None and point.y_high is not None:
                ax.errorbar(point.x, point.y, yerr=[[point.y - point.y_low], [point.y_high - point.y]], fmt="none",
                            ecolor=colour, alpha=0.35, capsize=3)  # fmt: skip
            ax.scatter([point.x], [point.y], s=70 if point.front else 40, color=colour,
                       edgecolors="black" if point.front else "none", zorder=3)  # fmt: skip
            ax.annotate(point.label, (point.x, point.y), textcoords="offset points", xytext=(6, 5), fontsize=8)
        front = sorted((p for p in figure.points if p.front), key=lambda p: (p.x, p.y))
        if len(front) > 1:
            ax.step([p.x for p in front], [p.y for p in front], where="post", color="black", linewidth=1,
                    linestyle="--", label="Pareto front", zorder=2)  # fmt: skip
            ax.legend(loc="lower right", fontsize=8)
        ax.set_xlabel(figure.x_label)
        ax.set_ylabel(figure.y_label)
        if figure.y_percent:
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_ylim(-0.05, 1.1)
        xs = [p.x for p in figure.points] or [0.0]
        span = max(xs) - min(min(xs), 0.0) or 1.0
        ax.set_xlim(min(0.0, min(xs)) - 0.05 * span, max(xs) + 0.25 * span)
        ax.grid(True, alpha=0.3)
        fig.suptitle(figure.title, fontsize=10, fontweight="bold")
        if figure.subtitle:
            ax.set_title(figure.subtitle, fontsize=7.5)
        fig.tight_layout()
        png, svg = io.BytesIO(), io.BytesIO()
        fig.savefig(png, format="png", metadata={"Software": None})
        fig.savefig(svg, format="svg", metadata={"Date": None})
    return png.getvalue(), svg.getvalue()
