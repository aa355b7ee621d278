"""Manifests from files or S3, resolved against the file system: every entry checked before anything runs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from pydantic import ValidationError

from quorum.domain.manifest import (
    TASK_ID_PATTERN,
    InstanceTests,
    Manifest,
    ManifestError,
    RejectedTask,
    TaskEnvironment,
    TaskSpec,
    _describe_location,
    _Manifest,
    _ManifestEntry,
    is_remote_repo,
)


def load_manifest(path: str | Path, *, base: Path | None = None, keep_going: bool = False) -> Manifest:
    """A manifest from a file, or from S3 (`s3://bucket/key.yaml`, read with boto3).

    Relative paths in a file manifest resolve against its folder; in an S3 manifest, against
    `base` (default: the working directory, which is QUORUM_HOME for deployment runs).
    With `keep_going` (deployments), an entry that cannot run is set aside in `Manifest.rejected`
    with its reason instead of failing the load; a manifest that is not one at all still fails.
    """
    if str(path).startswith("s3://"):
        return _load_s3_manifest(str(path), base or Path.cwd(), keep_going)
    manifest_path = Path(path)
    if not manifest_path.is_file():
        raise ManifestError(f"manifest {manifest_path} does not exist")
    try:
        raw = yaml.safe_load(manifest_path.read_text())
    except yaml.YAMLError as exc:
        raise ManifestError(f"manifest {manifest_path} is not valid YAML: {exc}") from exc
    return parse_manifest(
        raw, base=manifest_path.resolve().parent, label=f"manifest {manifest_path}", source=str(manifest_path.resolve()),
        keep_going=keep_going,
    )  # fmt: skip


def _load_s3_manifest(uri: str, base: Path, keep_going: bool = False) -> Manifest:
    from quorum.store import ArtifactNotFound, open_store

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise ManifestError(f"manifest {uri}: an S3 manifest URI needs a bucket and a key (s3://bucket/path.yaml)")
    try:
        text = open_store(f"s3://{bucket}").get_text(key)
    except ArtifactNotFound as exc:
        raise ManifestError(f"manifest {uri} does not exist") from exc
    except ValueError as exc:
        raise ManifestError(f"manifest {uri}: {exc}") from exc
    except Exception as exc:  # boto3/botocore errors: credentials, endpoint, permissions
        raise ManifestError(f"manifest {uri} could not be read: {type(exc).__name__}: {exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"manifest {uri} is not valid YAML: {exc}") from exc
    return parse_manifest(raw, base=base.resolve(), label=f"manifest {uri}", source=uri, keep_going=keep_going)


def parse_manifest(raw: object, *, base: Path, label: str, source: str, keep_going: bool = False) -> Manifest:
    """Validate manifest data; relative paths resolve against `base`, errors start with `label`.

    With `keep_going`, an entry whose files do not resolve goes to `rejected` (with the error) instead of
    raising; the manifest's shape (a mapping, a tasks list, unique ids) is still checked whole."""
    if not isinstance(raw, dict):
        raise ManifestError(f"{label} must be a mapping with a 'tasks' list")
    try:
        parsed = _Manifest.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = _describe_location(raw, err["loc"])
        raise ManifestError(f"{label}: {where}: {err['msg']}") from exc
    if not TASK_ID_PATTERN.match(parsed.batch):
        raise ManifestError(f"{label}: batch name {parsed.batch!r} must be letters, digits, '.', '_' or '-'")

    if not parsed.tasks and not parsed.instances:
        raise ManifestError(f"{label}: give 'tasks' (a list) or 'instances' (a SWE-bench .jsonl file), or both")
    seen: set[str] = set()
    specs = []
    rejected: list[RejectedTask] = []
    for entry in parsed.tasks:
        entry_label = f"{label}: task {entry.id!r}"
        if entry.id in seen:
            raise ManifestError(f"{entry_label}: duplicate task id")
        seen.add(entry.id)
        try:
            specs.append(_resolve_entry(entry, base, entry_label, parsed.environment))
        except ManifestError as exc:
            if not keep_going:
                raise
            rejected.append(RejectedTask(id=entry.id, repo=entry.repo, reason=str(exc)))
    instances_path = None
    if parsed.instances:
        instances_path = (base / parsed.instances).resolve()
        for spec in instance_specs(instances_path, parsed.repos, base, parsed.environment, label):
            if spec.id in seen:
                raise ManifestError(f"{label}: instance {spec.id!r}: duplicate task id")
            seen.add(spec.id)
            specs.append(spec)
    return Manifest(
        batch=parsed.batch, roster=parsed.roster, source=source, tasks=specs,
        instances=str(instances_path) if instances_path else None, rejected=rejected,
    )  # fmt: skip


def instance_specs(
    path: Path, repos: dict[str, str], base: Path, environment: TaskEnvironment, label: str
) -> list[TaskSpec]:
    """SWE-bench instances -> tasks: the problem statement is the task, ``test_patch`` + FAIL_TO_PASS /
    PASS_TO_PASS the held-out acceptance. The repository: ``repos[owner/name]`` (a local git repository
    or a git URL, at ``base_commit``), else the instance's ``snapshot`` directory (relative to the
    file: the tree at ``base_commit``), else ``https://github.com/<owner/name>.git`` at ``base_commit``."""
    from quorum.environments.swebench import load_instances

    if not path.is_file():
        raise ManifestError(f"{label}: instances file {path} does not exist")
    try:
        instances = load_instances(path)
    except ValueError as exc:
        raise ManifestError(f"{label}: instances file {exc}") from exc
    specs = []
    for inst in instances:
        where = f"{label}: instance {inst.instance_id!r}"
        ref: str | None = inst.base_commit
        named = repos.get(inst.repo)
        snapshot = (inst.model_extra or {}).get("snapshot")
        if named:
            remote = is_remote_repo(named)
            repo = named if remote else str((base / named).resolve())
            if not remote and not Path(repo).is_dir():
                raise ManifestError(f"{where}: repository {repo} does not exist")
        elif snapshot:
            repo, ref = str((path.parent / str(snapshot)).resolve()), None
            if not Path(repo).is_dir():
                raise ManifestError(f"{where}: snapshot {repo} does not exist")
        else:
            repo = f"https://github.com/{inst.repo}.git"
        if not inst.problem_statement.strip():
            raise ManifestError(f"{where}: problem_statement is empty")
        test_command = inst.test_command if isinstance(inst.test_command, str) or inst.test_command is None else None
        own = TaskEnvironment(python_deps=inst.python_deps, python=inst.python, test_command=test_command)
        try:
            specs.append(TaskSpec(
                id=inst.instance_id, repo=repo, ref=ref, task=inst.problem_statement.strip(),
                environment=environment.merged(own),
                instance=InstanceTests(
                    instance_id=inst.instance_id, base_commit=inst.base_commit, test_patch=inst.test_patch,
                    fail_to_pass=inst.FAIL_TO_PASS, pass_to_pass=inst.PASS_TO_PASS,
                ),
            ))  # fmt: skip
        except ValidationError as exc:
            raise ManifestError(f"{where}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from exc
    return specs


def _resolve_entry(entry: _ManifestEntry, base: Path, label: str, environment: TaskEnvironment) -> TaskSpec:
    remote = is_remote_repo(entry.repo)
    repo = Path(entry.repo) if remote else (base / entry.repo).resolve()
    if not remote and not repo.is_dir():
        raise ManifestError(f"{label}: repository path {repo} does not exist or is not a directory")
    if bool(entry.task) == bool(entry.task_file):
        raise ManifestError(f"{label}: give exactly one of 'task' (text) or 'task_file' (path)")
    if entry.task_file:
        task_path = (base / entry.task_file).resolve()
        if not task_path.is_file():
            raise ManifestError(f"{label}: task_file {task_path} does not exist")
        task_text = task_path.read_text().strip()
    else:
        task_text = (entry.task or "").strip()
    if not task_text:
        raise ManifestError(f"{label}: the task text is empty")

    acceptance = None
    if entry.acceptance:
        acceptance_path = (base / entry.acceptance).resolve()
        if not acceptance_path.is_dir():
            raise ManifestError(f"{label}: acceptance tests directory {acceptance_path} does not exist")
        if not remote and (acceptance_path == repo or repo in acceptance_path.parents):
            raise ManifestError(f"{label}: acceptance tests must live outside the repository (models would see them)")
        acceptance = str(acceptance_path)

    script = None
    digest = ""
    if entry.script:
        script_path = (base / entry.script).resolve()
        if not script_path.is_file():
            raise ManifestError(f"{label}: script {script_path} does not exist")
        script = str(script_path)
        digest = hashlib.sha256(script_path.read_bytes()).hexdigest()
    try:
        return TaskSpec(
            id=entry.id, repo=entry.repo if remote else str(repo), ref=entry.ref, task=task_text,
            acceptance=acceptance, script=script, script_sha256=digest,
            environment=environment.merged(TaskEnvironment(
                python_deps=entry.python_deps, python=entry.python, test_command=entry.test_command,
            )),
        )  # fmt: skip
    except ValidationError as exc:
        raise ManifestError(f"{label}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from exc
