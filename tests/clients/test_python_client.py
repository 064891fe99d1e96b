"""The generated Python client (clients/python) against the running service."""

from __future__ import annotations

from mmdshot_client import AuthenticatedClient, Client
from mmdshot_client.api.examples import examples_upsert
from mmdshot_client.api.imports import imports_create
from mmdshot_client.api.meta import meta_info
from mmdshot_client.api.pools import pools_calibrate, pools_create, pools_get
from mmdshot_client.api.selection import selection_select
from mmdshot_client.models import (
    CalibrateRequest,
    ErrorBody,
    ExampleIn,
    ExamplesUpsert,
    Job,
    PoolCreate,
    PoolInfo,
    PoolSelectRequest,
)
from mmdshot_client.wait import wait_for_job

from tests.app.conftest import Server, make_examples
from tests.clients.conftest import READ_KEY


def test_create_import_select(api: AuthenticatedClient) -> None:
    created = pools_create.sync(client=api, body=PoolCreate(name="generated"))
    assert created is not None and not isinstance(created, ErrorBody)
    assert (created.name, created.size) == ("generated", 0)

    records = [ExampleIn.from_dict(example) for example in make_examples(40)]
    started = imports_create.sync("generated", client=api, body=records)
    assert isinstance(started, Job)
    finished = wait_for_job(api, started.id, timeout=60)
    assert (finished.status, finished.inserted, finished.errors) == ("succeeded", 40, [])

    request = PoolSelectRequest(query="the trains felt negative", k=4, kernel="rbf")
    selection = selection_select.sync("generated", client=api, body=request)
    assert selection is not None and not isinstance(selection, ErrorBody)
    assert (selection.k, selection.kernel, selection.pool) == (4, "rbf", "generated")
    assert sorted(example.selection_rank for example in selection.examples) == [0, 1, 2, 3]
    assert selection.prompt.endswith("Input: the trains felt negative\nOutput:")
    assert selection.timings.total_ms > 0


def test_calibrate(api: AuthenticatedClient) -> None:
    pools_create.sync(client=api, body=PoolCreate(name="generated-calibration"))
    records = [ExampleIn.from_dict(example) for example in make_examples(30)]
    examples_upsert.sync("generated-calibration", client=api, body=ExamplesUpsert(records))
    request = CalibrateRequest(k=2, taus=[0.1, 0.4], validation_size=6)
    started = pools_calibrate.sync("generated-calibration", client=api, body=request)
    assert isinstance(started, Job) and started.kind == "calibration"
    finished = wait_for_job(api, started.id, timeout=60)
    assert finished.status == "succeeded" and finished.calibration
    pool = pools_get.sync("generated-calibration", client=api)
    assert isinstance(pool, PoolInfo) and pool.calibration and not pool.calibration.stale
    assert pool.calibration.tau == finished.calibration.tau in (0.1, 0.4)
    assert [score.tau for score in pool.calibration.scores] == [0.1, 0.4]
    selection = selection_select.sync(
        "generated-calibration", client=api, body=PoolSelectRequest(query="cars", k=2)
    )
    assert selection is not None and not isinstance(selection, ErrorBody)
    assert (selection.tau, selection.tau_source) == (pool.calibration.tau, "calibrated")


def test_errors_are_typed(api: AuthenticatedClient) -> None:
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


def test_the_token_is_the_api_key(api: AuthenticatedClient, server: Server) -> None:
    info = meta_info.sync(client=api)
    assert info is not None and not isinstance(info, ErrorBody) and info.auth == "api_key"
    with Client(base_url=server.url) as anonymous:
        refused = pools_get.sync_detailed("anything", client=anonymous)  # type: ignore[arg-type]
    assert refused.status_code == 401
    assert isinstance(refused.parsed, ErrorBody) and refused.parsed.error.type_ == "unauthorized"
    with AuthenticatedClient(base_url=server.url, token=READ_KEY) as reader:
        assert pools_get.sync_detailed("anything", client=reader).status_code == 404
        denied = pools_create.sync_detailed(client=reader, body=PoolCreate(name="read-only"))
    assert denied.status_code == 403
    assert isinstance(denied.parsed, ErrorBody) and denied.parsed.error.type_ == "forbidden"
