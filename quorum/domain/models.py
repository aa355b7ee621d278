"""Pydantic models for everything that crosses a boundary between stages, tasks and storage."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quorum.domain.edit_format import EditFormat


class Severity(str, Enum):
    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


class Finding(BaseModel):
    """One problem found in a patch, by a tool (semgrep, bandit, pytest, patch) or by a reviewer model.

    Tools and reviewers share this model so aggregation can tell when a tool and a reviewer,
    or two reviewers, point at the same place.
    """

    model_config = ConfigDict(frozen=True)

    source: str = Field(description="Who found it: a tool name ('bandit') or a reviewer model string.")
    rule: str = Field(default="", description="Tool rule id (e.g. 'B602') or a reviewer's short category.")
    severity: Severity = Severity.medium
    file: str = Field(default="", description="Path relative to the repository root; empty when not located.")
    line: int = Field(default=0, ge=0, description="1-based line; 0 when not located.")
    message: str = ""
    in_patch: bool = Field(default=True, description="False for pre-existing problems on lines the patch did not add.")

    @property
    def is_tool(self) -> bool:
        return self.source in TOOL_SOURCES

    def location(self) -> str:
        if not self.file:
            return "(no location)"
        return f"{self.file}:{self.line}" if self.line else self.file


TOOL_SOURCES = frozenset({"semgrep", "bandit", "pytest", "acceptance", "patch"})


class PlanStep(BaseModel):
    description: str
    files: list[str] = Field(default_factory=list)


class Plan(BaseModel):
    """The planner's structured output."""

    summary: str = Field(min_length=1)
    steps: list[PlanStep] = Field(min_length=1)
    files_to_change: list[str] = Field(default_factory=list)
    risks: list[str] = Field(default_factory=list)


class ReviewFinding(BaseModel):
    """A finding as a reviewer model writes it (source is filled in by quorum, not the model)."""

    severity: Severity
    file: str = ""
    line: int = Field(default=0, ge=0)
    category: str = ""
    message: str = Field(min_length=1)


class Review(BaseModel):
    """A reviewer's structured output."""

    verdict: Literal["approve", "request_changes"]
    summary: str = ""
    findings: list[ReviewFinding] = Field(default_factory=list)


class ReviewResult(BaseModel):
    """A parsed review attributed to its reviewer."""

    reviewer: str
    provider: str
    review: Review
    calls: list[LLMCall] = Field(default_factory=list)

    def findings(self) -> list[Finding]:
        return [
            Finding(
                source=self.reviewer,
                rule=f.category,
                severity=f.severity,
                file=f.file,
                line=f.line,
                message=f.message,
            )
            for f in self.review.findings
        ]


class LLMCall(BaseModel):
    """One call to a model through litellm: what it cost and what it carried (for audit and replay)."""

    stage: str
    model: str
    provider: str
    priced_as: str
    simulated: bool = Field(description="True for the scripted provider: tokens and cost are simulated.")
    attempt: int = 1
    prompt_tokens: int = Field(default=0, description="Every input token, cached and cache-written ones included.")
    completion_tokens: int = 0
    cached_tokens: int = Field(
        default=0, description="Input tokens read from the provider's prompt cache (part of prompt_tokens)."
    )
    cache_write_tokens: int = Field(
        default=0, description="Input tokens written to the provider's prompt cache (part of prompt_tokens; Anthropic)."
    )
    structured_output: str = Field(
        default="",
        description="How a structured reply was asked for: 'native' (the provider's response_format), 'prompt' "
        "(the prompt alone), '' (free text).",
    )
    cost_usd: float = 0.0
    latency_s: float = 0.0
    started_at: float = Field(description="Unix time the call started; older than the run means served from cache.")
    finish_reason: str = ""
    messages: list[dict] = Field(default_factory=list)
    response_text: str = ""
    error: str = ""
    error_kind: str = Field(
        default="",
        description="Why the call failed: rate_limit, server_error, timeout, connection, auth, context_length, "
        "content_filter, bad_request, ... (empty when a reply came back).",
    )
    retries: int = Field(default=0, description="Failed requests before this reply (all models of the chain).")
    attempt_errors: list[str] = Field(
        default_factory=list, description="One line per failed request: model, kind, status, wait (secrets redacted)."
    )
    fallback_from: str = Field(default="", description="The stage's primary model when a fallback served the call.")
    wait_s: float = Field(
        default=0.0, description="Time not spent on this reply: queued for provider slots, failed requests, backoff."
    )
    reply_check: dict[str, Any] = Field(
        default_factory=dict,
        description="What quorum's own check of the reply found, for stages that check more than its form "
        "(implement: the edit format asked for and used, and how each edit was placed or why it was refused).",
    )


class VerificationStatus(str, Enum):
    passed = "passed"
    failed = "failed"
    incomplete = "incomplete"
    error = "error"

    @classmethod
    def judge(cls, *, blocking: bool, incomplete: bool) -> VerificationStatus:
        """A scan's verdict: blocking findings first, then an incomplete scan; never clean by default."""
        if blocking:
            return cls.failed
        return cls.incomplete if incomplete else cls.passed


class VerificationReport(BaseModel):
    tool: str
    status: VerificationStatus
    summary: str = ""
    findings: list[Finding] = Field(default_factory=list)
    tool_version: str = ""
    duration_s: float = 0.0
    raw: str = Field(default="", description="The tool's machine-readable output (JSON or JUnit XML).", repr=False)
    raw_name: str = Field(default="", description="Artifact file name for raw, e.g. 'bandit.json'.")
    reason: str = Field(
        default="",
        description=(
            "Why this verdict, machine-readable: 'failed' (tests failed), 'findings' (scanner), 'timeout', "
            "'resource_limit' (see limit_hit), 'inconsistent_report' (JUnit XML, exit code and summary "
            "disagree), 'no_report', 'crashed', 'scan_errors', 'unparseable_files', 'not_scanned', "
            "'sandbox_error', 'no_isolation' (untrusted tests not run: no sandbox possible here), 'tool_error', "
            "'env_error' (the repository's test environment could not be built: never the patch's fault); "
            "'' when passed."
        ),
    )
    limit_hit: str = Field(default="", description="For reason 'resource_limit': 'cpu', 'memory', 'processes' or 'file_size'.")
    network_isolated: bool | None = Field(
        default=None, description="Runs of untrusted code: True when it had no network; None for scanners."
    )
    sandbox: dict[str, Any] = Field(default_factory=dict, description="How untrusted code was confined (quorum.sandbox.runner.Isolation).")
    log: str = Field(default="", repr=False, description="The run's output (stdout, stderr), head and tail kept past a cap.")
    log_name: str = Field(default="", description="Artifact file name for log, e.g. 'pytest.log'.")
    tests: TestsJudged | None = Field(
        default=None, description="Repository test runs in the repository's own environment: judged against the baseline."
    )

    @property
    def blocking(self) -> bool:
        return self.status != VerificationStatus.passed


class TestsJudged(BaseModel):
    """A run of a repository's tests in its own environment, judged against the baseline of the base."""

    __test__ = False  # not a pytest test class
    environment: str = Field(default="", description="The environment's key.")
    newly_failing: list[str] = Field(default_factory=list, description="Passed at the baseline, fail now: blamed.")
    preexisting_failing: list[str] = Field(default_factory=list, description="Failing at the baseline too: not blamed.")
    flaky: list[str] = Field(default_factory=list, description="Flaky at the baseline or passed on a re-run: not blamed.")
    fail_to_pass_passing: list[str] = Field(default_factory=list)
    fail_to_pass_failing: list[str] = Field(default_factory=list)
    pass_to_pass_checked: int = 0
    counts: dict[str, int] = Field(default_factory=dict, description="Outcomes of the run: passed, failed, ...")
    covering_files: list[str] = Field(default_factory=list, description="Test files covering the changed files (run first).")
    ran_files: list[str] = Field(default_factory=list)
    not_run_files: list[str] = Field(default_factory=list, description="Not run: the time budget ran out.")
    held_out_files: list[str] = Field(
        default_factory=list,
        description="Test files a SWE-bench instance's test_patch updates: left to its acceptance, not judged here.",
    )
    rerun: str = Field(default="", description="How tests that newly failed were run again before being blamed.")


class EnvironmentSummary(BaseModel):
    """A task's test environment and its baselines, as result.json and `quorum validate` show them."""

    status: Literal["none", "built", "reused", "env_error"] = Field(
        description="'none': the repository declares no dependencies (tests run as before, with quorum's interpreter)."
    )
    key: str = ""
    python_version: str = ""
    duration_s: float = 0.0
    error: str = ""
    sources: list[str] = Field(default_factory=list, description="Where the environment's requirements came from.")
    baseline_failing: list[str] = Field(default_factory=list, description="Failing or erroring on the base (twice).")
    baseline_flaky: list[str] = Field(default_factory=list, description="Failed, then passed on the re-run.")
    baseline_passing: int = 0
    baseline_cached: bool = False
    f2p_total: int = 0
    f2p_failing_before: int = Field(default=0, description="FAIL_TO_PASS tests failing on the base + test_patch.")
    p2p_total: int = 0
    p2p_failing_before: list[str] = Field(default_factory=list, description="PASS_TO_PASS tests already failing there.")


class MatchKind(str, Enum):
    """How an edit of the implementer's reply was placed in its file."""

    exact = "exact"  # every old line equal, byte for byte (line endings aside)
    whitespace = "whitespace"  # equal once trailing whitespace, tabs and inner runs of spaces are ignored
    indent = "indent"  # equal once all whitespace is ignored (indentation drift); added lines re-indented
    elision = "elision"  # `... existing code ...` lines stood for unchanged lines
    new_file = "new_file"
    deleted = "deleted"
    whole_file = "whole_file"
    none = "none"  # not placed (the edit was refused, or not looked at because another edit failed)


class EditOutcome(BaseModel):
    """What happened to one hunk, SEARCH/REPLACE block or whole file of a reply."""

    file: str
    edit: int = Field(description="1-based index of the edit in the reply.")
    hunk: int = Field(default=1, description="1-based hunk number within the edit.")
    label: str = Field(description="e.g. 'hunk #2 of src/app.py (diff #1)'.")
    format: EditFormat
    match: MatchKind = MatchKind.none
    placed_by: str = Field(
        default="content",
        description="'content' (matched one place), 'hunk order' (one of several places, the only one between "
        "its neighbouring hunks) or 'line numbers' (one of several places, the one its @@ numbers point at, "
        "confirmed by the other hunks).",
    )
    applied: bool = False
    start: int | None = Field(default=None, description="1-based first line of the hunk in the new file.")
    reason: str = ""


class PatchResult(BaseModel):
    """The result of applying a model reply to a workspace (`quorum.edits.apply_reply`): all edits or none."""

    applied: bool
    reason: str = Field(default="", description="Why nothing was applied; every problem, each naming file and hunk.")
    files: list[str] = Field(default_factory=list, description="Touched paths in reply order (deleted ones included).")
    added_lines: dict[str, list[int]] = Field(
        default_factory=dict, description="Path -> 1-based numbers of the added or changed lines in the new file."
    )
    dry_run: bool = False
    problems: list[str] = Field(default_factory=list, description="The problems, one per item ('reason' joins them).")
    diff: str = Field(default="", description="Normalised unified diff of what was applied (git apply accepts it).")
    edits: list[EditOutcome] = Field(default_factory=list, description="How each edit was placed, or why not.")
    format: str | None = Field(default=None, description="The edit format used, 'mixed' for several, None for none.")
    notes: list[str] = Field(default_factory=list, description="Things skipped on purpose (duplicates, illustrations).")


class Outcome(str, Enum):
    approve = "approve"
    revise = "revise"
    escalate = "escalate"
    fail = "fail"


class Decision(BaseModel):
    outcome: Outcome
    reasons: list[str]
    findings: list[Finding] = Field(default_factory=list, description="The findings that drove the decision.")
    notes: list[str] = Field(
        default_factory=list,
        description="Facts a person must see that did not drive the outcome (e.g. tests ran unisolated); "
        "never fed back to a model.",
    )
    policy_version: str
    round: int


class TaskStatus(str, Enum):
    resolved = "resolved"
    approved_unverified = "approved_unverified"
    escalated = "escalated"
    failed = "failed"
    error = "error"
    skipped = "skipped"


class StageCost(BaseModel):
    calls: int = 0
    fresh_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = Field(default=0, description="Of prompt_tokens, read from provider prompt caches.")
    cache_write_tokens: int = Field(default=0, description="Of prompt_tokens, written to provider prompt caches.")
    cost_usd: float = 0.0
    latency_s: float = Field(default=0.0, description="Seconds the calls took, summed (a cached call counts its original time).")


class CostSummary(BaseModel):
    simulated: bool = False
    total: StageCost = Field(default_factory=StageCost)
    by_stage: dict[str, StageCost] = Field(default_factory=dict)
    by_model: dict[str, StageCost] = Field(default_factory=dict)


class ContextSpan(BaseModel):
    """A region of a file a model was shown: 1-based inclusive lines of the file as it was on disk."""

    path: str
    start_line: int
    end_line: int
    tokens: int = Field(description="Tokens of its rendering (header and line numbers included), by the stage model's counter.")
    reasons: list[str] = Field(default_factory=list, description="Why it was chosen (ranking evidence, plan, patch).")


class StageContextRecord(BaseModel):
    """What one stage's model saw of the repository, and why (kept in each round's context.json)."""

    stage: str = Field(description="localize, plan, implement or review.")
    model: str = ""
    budget: int = Field(default=0, description="The model's context budget in tokens (its roster context_tokens).")
    tokens: int = Field(default=0, description="Tokens of the repository context given, by the model's own tokenizer.")
    regions: list[ContextSpan] = Field(default_factory=list)
    notes: list[str] = Field(
        default_factory=list,
        description="How it was made, e.g. whether localization came from the model or the deterministic fallback.",
    )


class RoundContext(BaseModel):
    """Every stage context of one round: the artifact context.json."""

    round: int
    stages: list[StageContextRecord] = Field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        return sum(stage.tokens for stage in self.stages)


class RoundRecord(BaseModel):
    round: int
    patch_applied: bool
    patch_reason: str = ""
    verification: list[VerificationReport] = Field(default_factory=list)
    reviews: list[ReviewResult] = Field(default_factory=list)
    decision: Decision
    diff: str = Field(default="", description="The round's patch as applied (patch.diff); empty when none applied.")


class TaskResult(BaseModel):
    batch_id: str
    task_id: str
    repo: str
    status: TaskStatus
    reason: str = ""
    rounds: int = 0
    decision: Decision | None = None
    acceptance: VerificationReport | None = None
    cost: CostSummary = Field(default_factory=CostSummary)
    timings_s: dict[str, float] = Field(default_factory=dict)
    contexts: list[RoundContext] = Field(
        default_factory=list, description="What each stage saw of the repository, per round (each round's context.json)."
    )
    artifacts: dict[str, str] = Field(default_factory=dict, description="Artifact name -> store key.")
    policy_version: str = ""
    spec_digest: str = Field(default="", description="Digest of task, roster and policy; a resumed batch reuses a result only if it matches.")
    reused: bool = Field(default=False, description="Taken from an earlier run of the same batch (resume), not run again.")
    environment: EnvironmentSummary | None = Field(default=None, description="The repository's test environment and baseline.")
    flow_run_id: str = Field(default="", description="The Prefect flow run of the task's pipeline (a link in the UI).")


class ReportRow(BaseModel):
    """One task in a batch report: a line of `report.jsonl` (the full record is the task's result.json)."""

    task_id: str
    repo: str
    status: TaskStatus
    reason: str = ""
    rounds: int = 0
    reused: bool = Field(default=False, description="Kept from an earlier, interrupted run of the batch.")
    cost: CostSummary = Field(default_factory=CostSummary)
    result: str = Field(default="", description="Store key of the task's result.json.")
    flow_run_id: str = Field(default="", description="The Prefect flow run of the task's pipeline.")


class BatchReport(BaseModel):
    """A batch's summary (`report.json`). The rows, one per task, are in `report.jsonl` (`rows`), never in here,
    so the summary stays the same size whatever the batch's size."""

    batch_id: str
    started_at: float
    finished_at: float
    roster: str
    store: str
    tasks: int = Field(default=0, description="Tasks in the batch (rows in report.jsonl).")
    cost: CostSummary
    counts: dict[str, int]
    resolved_rate: float
    cost_per_task_usd: float
    cost_per_resolved_usd: float | None
    fresh_llm_calls: int
    cached_llm_calls: int
    reused_results: int = Field(default=0, description="Tasks whose result an earlier, interrupted run of this batch had finished.")
    mode: str = Field(default="in-process", description="'in-process' or 'fan-out' (shards of tasks as deployment runs).")
    shards: int = Field(default=0, description="Fan-out: deployment runs the batch sent out (0 in-process).")
    batch_budget_usd: float | None = None
    rows: str = Field(default="", description="Store key of report.jsonl: one ReportRow per task, in manifest order.")
    needs_human: list[ReportRow] = Field(
        default_factory=list,
        description="The first rows (manifest order, at most a fixed number) a person must look at: escalated, failed, error.",
    )
    needs_human_total: int = Field(default=0, description="All rows that need a person, shown or not.")
    repos: list[str] = Field(default_factory=list, description="Up to 20 of the batch's repositories, sorted.")


ReviewResult.model_rebuild()
VerificationReport.model_rebuild()
