"""The command-line contract again, with `TASKCRON_STORE` naming a PostgreSQL store.

The tests are test_contract's own, collected here a second time: an autouse
fixture adds the store's URL to the environment of every subprocess they start.
Left out are the tests about the SQLite file itself, the home's files and
`init`'s output, which the store URL changes by design, and those that set up
their tasks through the API on the home's default store.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tests.cli.test_contract as contract
import tests.conftest as shared
from tests.cli.test_contract import (  # noqa: F401  (collected here with a PostgreSQL store)
    background_tick,
    test_a_100_mb_payload_through_standard_input_round_trips,
    test_a_command_gets_its_data_on_stdin_and_its_id_in_the_environment,
    test_a_command_output_is_kept_with_its_run,
    test_a_command_sees_the_budget_as_an_iso_deadline,
    test_a_command_that_cannot_start_fails_its_run_with_one_line,
    test_a_retried_failed_task_goes_to_the_back_of_the_line,
    test_a_retried_task_that_was_cancelled_during_its_backoff_is_due_now,
    test_a_task_past_its_timeout_is_killed_and_the_tick_fails,
    test_a_tick_of_a_busy_scope_exits_quietly_as_busy,
    test_actions_on_a_running_task_are_refused_naming_its_state,
    test_actions_on_an_unknown_id_are_one_line_and_exit_1,
    test_an_invalid_module_id_gets_the_documented_line,
    test_call_target_result_is_stored_and_found_from_the_config_dir,
    test_call_target_that_does_not_import_fails_at_run_time_saying_why,
    test_call_target_that_raises_fails_the_run_with_its_traceback,
    test_data_from_a_file,
    test_data_from_standard_input,
    test_failed_run_with_attempts_left_requeues_the_task_and_still_exits_1,
    test_failing_task_gives_one_error_line_and_exit_1,
    test_failing_task_with_json_prints_the_failed_run_and_the_error_line,
    test_good_tick_prints_nothing,
    test_idle_tick_json,
    test_idle_tick_prints_nothing,
    test_retry_resets_attempts_and_the_task_runs_again,
    test_schedule_json_prints_the_task_as_one_object,
    test_schedule_prints_only_the_new_id,
    test_schedule_without_data_gives_empty_data_and_the_target_as_title,
    test_show_json_has_the_task_and_its_runs,
    test_show_of_an_unknown_id_is_one_line_and_exit_1,
    test_show_prints_the_task_and_its_runs,
    test_task_target_runs_a_registered_handler,
    test_the_brief_order_example_through_the_cli,
    test_tick_json_shows_the_task_it_ran_with_its_runs,
    test_verbose_tick_says_what_it_did,
)


@pytest.fixture(autouse=True)
def store_in_postgres(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every subprocess the tests start gets TASKCRON_STORE: a fresh PostgreSQL database."""
    plain = shared.clean_env

    def with_store(**extra: str) -> dict[str, str]:
        return plain(**{"TASKCRON_STORE": postgres_url, **extra})

    monkeypatch.setattr(shared, "clean_env", with_store)
    monkeypatch.setattr(contract, "clean_env", with_store)
    yield
