"""The generated Python client (clients/python) against the running service."""

from __future__ import annotations

import time

from mmdshot_client import Client
from mmdshot_client.api.imports import imports_create, imports_get
from mmdshot_client.api.pools import pools_create, pools_get
from mmdshot_client.api.selection import selection_select
from mmdshot_client.models import ErrorBody, ExampleIn, Job, PoolCreate, PoolSelectRequest

from tests.app.conftest import make_examples


def wait_for(api: Client, job: Job) -> Job:
    deadline = time.monotonic() + 60.0
    while job.status not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, "the import did not finish"
        time.sleep(0.05)
        polled = imports_get.sync(job.id, client=api)
        assert isinstance(polled, Job)
        job = polled
    return job


def test_create_import_select(api: Client) -> None:
    created = pools_create.sync(client=api, body=PoolCreate(name="generated"))
    assert created is not None and not isinstance(created, ErrorBody)
    assert (created.name, created.size) == ("generated", 0)

    records = [ExampleIn.from_dict(example) for example in make_examples(40)]
    started = imports_create.sync("generated", client=api, body=records)
    assert isinstance(started, Job)
    finished = wait_for(api, started)
    assert (finished.status, finished.inserted, finished.errors) == ("succeeded", 40, [])

    request = PoolSelectRequest(query="the trains felt negative", k=4, kernel="rbf")
    selection = selection_select.sync("generated", client=api, body=request)
    assert selection is not None and not isinstance(selection, ErrorBody)
    assert (selection.k, selection.kernel, selection.pool) == (4, "rbf", "generated")
    assert sorted(example.selection_rank for example in selection.examples) == [0, 1, 2, 3]
    assert selection.prompt.endswith("Input: the trains felt negative\nOutput:")
    assert selection.timings.total_ms > 0


def test_errors_are_typed(api: Client) -> None:
    assert pools_create.sync(client=api, body=PoolCreate(name="twice")) is not None
    again = pools_create.sync_detailed(client=api, body=PoolCreate(name="twice"))
    assert again.status_code == 409
    assert isinstance(again.parsed, ErrorBody) and again.parsed.error.type_ == "conflict"

    missing = pools_get.sync_detailed("nowhere", client=api)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, ErrorBody) and missing.parsed.error.type_ == "not_found"

    too_many = selection_select.sync_detailed(
        "twice", client=api, body=PoolSelectRequest(query="anything", k=3)
    )
    assert too_many.status_code == 422
    assert isinstance(too_many.parsed, ErrorBody)
    assert too_many.parsed.error.type_ == "invalid_input"
