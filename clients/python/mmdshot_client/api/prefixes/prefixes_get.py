from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.prefix_info import PrefixInfo
from ...types import Response


def _get_kwargs(
    pool: str,
    name: str,
) -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/v1/pools/{pool}/prefixes/{name}".format(
            pool=quote(str(pool), safe=""),
            name=quote(str(name), safe=""),
        ),
    }

    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorBody | PrefixInfo | None:
    if response.status_code == 200:
        response_200 = PrefixInfo.from_dict(response.json())

        return response_200

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if response.status_code == 404:
        response_404 = ErrorBody.from_dict(response.json())

        return response_404

    if response.status_code == 422:
        response_422 = ErrorBody.from_dict(response.json())

        return response_422

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
    name: str,
    *,
    client: AuthenticatedClient,
) -> Response[ErrorBody | PrefixInfo]:
    """One prefix, with its block and whether it is stale

    Args:
        pool (str): Pool name.
        name (str): Prefix name.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | PrefixInfo]
    """

    kwargs = _get_kwargs(
        pool=pool,
        name=name,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    pool: str,
    name: str,
    *,
    client: AuthenticatedClient,
) -> ErrorBody | PrefixInfo | None:
    """One prefix, with its block and whether it is stale

    Args:
        pool (str): Pool name.
        name (str): Prefix name.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | PrefixInfo
    """

    return sync_detailed(
        pool=pool,
        name=name,
        client=client,
    ).parsed


async def asyncio_detailed(
    pool: str,
    name: str,
    *,
    client: AuthenticatedClient,
) -> Response[ErrorBody | PrefixInfo]:
    """One prefix, with its block and whether it is stale

    Args:
        pool (str): Pool name.
        name (str): Prefix name.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | PrefixInfo]
    """

    kwargs = _get_kwargs(
        pool=pool,
        name=name,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    pool: str,
    name: str,
    *,
    client: AuthenticatedClient,
) -> ErrorBody | PrefixInfo | None:
    """One prefix, with its block and whether it is stale

    Args:
        pool (str): Pool name.
        name (str): Prefix name.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | PrefixInfo
    """

    return (
        await asyncio_detailed(
            pool=pool,
            name=name,
            client=client,
        )
    ).parsed
