"""Task data has no size limit of its own: a 100 MB JSON payload round-trips exactly."""

from __future__ import annotations

import pytest

from taskcron.store import Store
from tests.store.conftest import T0, new_task

SIZE = 100_000_000


@pytest.mark.slow
def test_a_100_mb_json_payload_round_trips_through_schedule_and_get(store: Store) -> None:
    payload = '{"blob": "' + "x" * SIZE + '", "end": "\\u00e9\\n"}'
    created = store.schedule(new_task(data_json=payload), now=T0)
    task_id = created.id
    assert created.data_json == payload
    del created  # keep at most two copies alive

    loaded = store.get(task_id)

    assert len(loaded.data_json) == len(payload)
    assert loaded.data_json == payload
    assert loaded.data_json.endswith('"end": "\\u00e9\\n"}')
