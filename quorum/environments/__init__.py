"""Per-repository test environments, baselines and SWE-bench I/O (issue 13).

Modules: ``requirements`` (pure: declared deps -> EnvironmentSpec + key), ``build`` (uv build into
a locked, content-keyed cache), ``testrun`` (pytest plan / JUnit parsing / runs), ``baseline``
(baseline + judge), ``swebench`` (instances, predictions), ``scope`` (tests covering a change),
``runner`` (commands as data; the default local runner), ``sandboxed`` (builds and test runs in
quorum's sandbox), ``task_env`` (what the pipeline's environment tasks call). Gold validation is
``quorum validate`` (the real pipeline with the gold roster: ``quorum/llm/gold.py``,
``quorum/domain/validation.py``).
"""
