"""What an experiment's figure shows (pure data): cost against outcome, one point per roster or reviewer,
with the Pareto front. `quorum.charts` draws it."""

from __future__ import annotations

from pydantic import BaseModel, Field

from quorum.domain.compare import SIMULATED_NOTE, CompareReport
from quorum.domain.review_eval import ReviewEvalReport


class ScatterPoint(BaseModel):
    label: str
    x: float
    y: float
    y_low: float | None = Field(default=None, description="Lower end of an error bar on y (e.g. a 95 % interval).")
    y_high: float | None = None
    front: bool = False
    kind: str = ""


class ScatterFigure(BaseModel):
    title: str
    subtitle: str = ""
    x_label: str
    y_label: str
    y_percent: bool = True
    points: list[ScatterPoint]


def compare_figure(report: CompareReport) -> ScatterFigure:
    simulated = "SIMULATED — " if report.simulated else ""
    return ScatterFigure(
        title=f"{simulated}cost per task vs resolved rate · {report.compare_id}",
        subtitle=(SIMULATED_NOTE + "; " if report.simulated else "")
        + f"{len(report.tasks)} tasks; bars: 95 % Wilson interval; line: Pareto front",
        x_label="total $ per task" + (" (simulated)" if report.simulated else ""),
        y_label="resolved",
        points=[
            ScatterPoint(label=row.roster, x=row.total_usd_per_task, y=row.resolved_rate, y_low=row.resolved_low,
                         y_high=row.resolved_high, front=row.pareto)  # fmt: skip
            for row in report.rows
        ],
    )


def eval_figure(report: ReviewEvalReport) -> ScatterFigure:
    simulated = "SIMULATED — " if report.simulated else ""
    return ScatterFigure(
        title=f"{simulated}cost per review vs F1 · {report.set_name}",
        subtitle=(SIMULATED_NOTE + "; " if report.simulated else "")
        + f"{report.changes} changes ({report.defective} defective); line: Pareto front",
        x_label="$ per review" + (" (simulated)" if report.simulated else ""),
        y_label="F1 (blocking findings on labelled defects)",
        points=[
            ScatterPoint(label=row.name, x=row.cost_per_review_usd or 0.0, y=row.f1 or 0.0, front=row.pareto,
                         kind=row.kind)  # fmt: skip
            for row in report.rows
        ],
    )
