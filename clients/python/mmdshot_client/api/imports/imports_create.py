from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.example_in import ExampleIn
from ...models.job import Job
from ...types import Response


def _get_kwargs(
    pool: str,
    *,
    body: list[ExampleIn],
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/pools/{pool}/imports".format(
            pool=quote(str(pool), safe=""),
        ),
    }

    _kwargs["json"] = []
    for body_item_data in body:
        body_item = body_item_data.to_dict()
        _kwargs["json"].append(body_item)

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorBody | Job | None:
    if response.status_code == 202:
        response_202 = Job.from_dict(response.json())

        return response_202

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorBody.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = ErrorBody.from_dict(response.json())

        return response_404

    if response.status_code == 408:
        response_408 = ErrorBody.from_dict(response.json())

        return response_408

    if response.status_code == 413:
        response_413 = ErrorBody.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = ErrorBody.from_dict(response.json())

        return response_415

    if response.status_code == 422:
        response_422 = ErrorBody.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = ErrorBody.from_dict(response.json())

        return response_429

    if response.status_code == 503:
        response_503 = ErrorBody.from_dict(response.json())

        return response_503

    if response.status_code == 507:
        response_507 = ErrorBody.from_dict(response.json())

        return response_507

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ErrorBody | Job]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    pool: str,
    *,
    client: AuthenticatedClient,
    body: list[ExampleIn],
) -> Response[ErrorBody | Job]:
    """Import examples in the background; bad lines are reported, good ones kept

     The body is written to the store as it arrives (at most `max_import_bytes`, 413 beyond) and parsed
    by the job, one line (or array element) at a time: `total` is known once the job has counted the
    records. A body that is not a JSON array nor JSON lines fails the job with a message; each bad line
    is one of its `errors`.

    Args:
        pool (str): Pool name.
        body (list[ExampleIn]):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | Job]
    """

    kwargs = _get_kwargs(
        pool=pool,
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    pool: str,
    *,
    client: AuthenticatedClient,
    body: list[ExampleIn],
) -> ErrorBody | Job | None:
    """Import examples in the background; bad lines are reported, good ones kept

     The body is written to the store as it arrives (at most `max_import_bytes`, 413 beyond) and parsed
    by the job, one line (or array element) at a time: `total` is known once the job has counted the
    records. A body that is not a JSON array nor JSON lines fails the job with a message; each bad line
    is one of its `errors`.

    Args:
        pool (str): Pool name.
        body (list[ExampleIn]):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | Job
    """

    return sync_detailed(
        pool=pool,
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    pool: str,
    *,
    client: AuthenticatedClient,
    body: list[ExampleIn],
) -> Response[ErrorBody | Job]:
    """Import examples in the background; bad lines are reported, good ones kept

     The body is written to the store as it arrives (at most `max_import_bytes`, 413 beyond) and parsed
    by the job, one line (or array element) at a time: `total` is known once the job has counted the
    records. A body that is not a JSON array nor JSON lines fails the job with a message; each bad line
    is one of its `errors`.

    Args:
        pool (str): Pool name.
        body (list[ExampleIn]):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | Job]
    """

    kwargs = _get_kwargs(
        pool=pool,
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    pool: str,
    *,
    client: AuthenticatedClient,
    body: list[ExampleIn],
) -> ErrorBody | Job | None:
    """Import examples in the background; bad lines are reported, good ones kept

     The body is written to the store as it arrives (at most `max_import_bytes`, 413 beyond) and parsed
    by the job, one line (or array element) at a time: `total` is known once the job has counted the
    records. A body that is not a JSON array nor JSON lines fails the job with a message; each bad line
    is one of its `errors`.

    Args:
        pool (str): Pool name.
        body (list[ExampleIn]):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | Job
    """

    return (
        await asyncio_detailed(
            pool=pool,
            client=client,
            body=body,
        )
    ).parsed
