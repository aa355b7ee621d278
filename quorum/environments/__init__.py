"""Per-repository test environments, baselines, SWE-bench I/O and gold validation (issue 13).

Modules: ``requirements`` (pure: declared deps -> EnvironmentSpec + key), ``build`` (uv build into
a locked, content-keyed cache), ``testrun`` (pytest plan / JUnit parsing / runs), ``baseline``
(baseline + judge), ``swebench`` (instances, predictions), ``scope`` (tests covering a change),
``validate`` (gold validation), ``runner`` (commands as data; the default local runner).
"""
