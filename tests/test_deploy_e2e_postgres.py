"""tests/test_deploy_e2e.py again, every test, on a Prefect server that keeps its data in PostgreSQL, as
production deploys it (infra/): Debian's PostgreSQL, a throwaway cluster started as the `postgres` user
on a free port and removed afterwards (tests/support/postgres.py). Heavy (`make test-heavy`); a machine
without PostgreSQL fails here saying what to install, never skips. A file of its own so that
`pytest -n 2 --dist loadfile` runs it beside the SQLite file, not after it.
"""

from __future__ import annotations

import pytest

from tests import test_deploy_e2e as e2e

pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    yield from e2e.running_stack(tmp_path_factory, "postgres")


# The same test functions, collected here with this module's PostgreSQL `stack` (in this order: the last
# one checks every finished run is a row of PostgreSQL's flow_run table).
test_deploy_registers_schedule_and_event_trigger = e2e.test_deploy_registers_schedule_and_event_trigger
test_batch_fans_out_over_both_workers = e2e.test_batch_fans_out_over_both_workers
test_event_triggers_the_single_task_deployment = e2e.test_event_triggers_the_single_task_deployment
test_a_worker_run_after_a_cli_run_of_the_same_task_pays_no_call = e2e.test_a_worker_run_after_a_cli_run_of_the_same_task_pays_no_call
test_signed_github_webhook_becomes_a_flow_run_and_unsigned_is_refused = (
    e2e.test_signed_github_webhook_becomes_a_flow_run_and_unsigned_is_refused
)
test_killed_worker_batch_resumes_without_paying_twice = e2e.test_killed_worker_batch_resumes_without_paying_twice
test_the_runs_are_in_the_stacks_own_database = e2e.test_the_runs_are_in_the_stacks_own_database
