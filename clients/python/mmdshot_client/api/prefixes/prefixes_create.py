from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.prefix_create import PrefixCreate
from ...models.prefix_info import PrefixInfo
from ...types import Response


def _get_kwargs(
    pool: str,
    *,
    body: PrefixCreate,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/pools/{pool}/prefixes".format(
            pool=quote(str(pool), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorBody | PrefixInfo | None:
    if response.status_code == 201:
        response_201 = PrefixInfo.from_dict(response.json())

        return response_201

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

    if response.status_code == 409:
        response_409 = ErrorBody.from_dict(response.json())

        return response_409

    if response.status_code == 413:
        response_413 = ErrorBody.from_dict(response.json())

        return response_413

    if response.status_code == 422:
        response_422 = ErrorBody.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = ErrorBody.from_dict(response.json())

        return response_429

    if response.status_code == 503:
        response_503 = ErrorBody.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorBody | PrefixInfo]:
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
    body: PrefixCreate,
) -> Response[ErrorBody | PrefixInfo]:
    """Choose k examples by MMD to a target and keep them as the pool's prefix

     The target is texts, another pool, or `"traffic"` (the pool's recent queries,
    MMDSHOT_TRAFFIC_SAMPLE). The prefix keeps its examples' texts and order as chosen now, and its block
    rendered once through its template: selections with `prefix` put it first, byte-identical on every
    call.

    Args:
        pool (str): Pool name.
        body (PrefixCreate): A prefix: k examples chosen by MMD to ``target`` (texts, another
            pool, or the pool's
            recorded traffic) with the selection options given, then stored in order with their
            texts and rendered through ``template`` and ``separator``.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | PrefixInfo]
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
    body: PrefixCreate,
) -> ErrorBody | PrefixInfo | None:
    """Choose k examples by MMD to a target and keep them as the pool's prefix

     The target is texts, another pool, or `"traffic"` (the pool's recent queries,
    MMDSHOT_TRAFFIC_SAMPLE). The prefix keeps its examples' texts and order as chosen now, and its block
    rendered once through its template: selections with `prefix` put it first, byte-identical on every
    call.

    Args:
        pool (str): Pool name.
        body (PrefixCreate): A prefix: k examples chosen by MMD to ``target`` (texts, another
            pool, or the pool's
            recorded traffic) with the selection options given, then stored in order with their
            texts and rendered through ``template`` and ``separator``.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | PrefixInfo
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
    body: PrefixCreate,
) -> Response[ErrorBody | PrefixInfo]:
    """Choose k examples by MMD to a target and keep them as the pool's prefix

     The target is texts, another pool, or `"traffic"` (the pool's recent queries,
    MMDSHOT_TRAFFIC_SAMPLE). The prefix keeps its examples' texts and order as chosen now, and its block
    rendered once through its template: selections with `prefix` put it first, byte-identical on every
    call.

    Args:
        pool (str): Pool name.
        body (PrefixCreate): A prefix: k examples chosen by MMD to ``target`` (texts, another
            pool, or the pool's
            recorded traffic) with the selection options given, then stored in order with their
            texts and rendered through ``template`` and ``separator``.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | PrefixInfo]
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
    body: PrefixCreate,
) -> ErrorBody | PrefixInfo | None:
    """Choose k examples by MMD to a target and keep them as the pool's prefix

     The target is texts, another pool, or `"traffic"` (the pool's recent queries,
    MMDSHOT_TRAFFIC_SAMPLE). The prefix keeps its examples' texts and order as chosen now, and its block
    rendered once through its template: selections with `prefix` put it first, byte-identical on every
    call.

    Args:
        pool (str): Pool name.
        body (PrefixCreate): A prefix: k examples chosen by MMD to ``target`` (texts, another
            pool, or the pool's
            recorded traffic) with the selection options given, then stored in order with their
            texts and rendered through ``template`` and ``separator``.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | PrefixInfo
    """

    return (
        await asyncio_detailed(
            pool=pool,
            client=client,
            body=body,
        )
    ).parsed
