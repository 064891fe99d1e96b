from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="Limits")


@_attrs_define
class Limits:
    """
    Attributes:
        compute_queue (int): Selections that may wait; then 429.
        max_body_bytes (int): Largest request body (bytes), imports aside.
        max_import_bytes (int): Largest import body (bytes).
        max_prompt_chars (int): Longest rendered prompt (characters).
        max_request_cost (int): Cost budget of one selection (units of about one kernel evaluation): problems x pool x
            (target points + k x (num_subsets + 1)) + 100 per embedded character (2,048 at most per text); above it 422
            too_costly.
        max_response_chars (int): Most characters of text (prompts and examples) in one selection response.
        max_upsert_batch (int): Most examples in one upsert.
        request_timeout_s (float): Deadline of a request's compute; past it 503 timeout with Retry-After.
        write_queue (int): Writes that may wait, in their own queue; then 429.
        max_inline_candidates (int | Unset): Most candidates in POST /v1/select. Default: 5000.
        max_k (int | Unset): Largest k. Default: 256.
        max_page (int | Unset): Largest page of examples. Default: 1000.
        max_queries (int | Unset): Most queries in one request. Default: 256.
        max_query_chars (int | Unset): Longest query. Default: 8192.
        max_text_chars (int | Unset): Longest input or output. Default: 32768.
    """

    compute_queue: int
    max_body_bytes: int
    max_import_bytes: int
    max_prompt_chars: int
    max_request_cost: int
    max_response_chars: int
    max_upsert_batch: int
    request_timeout_s: float
    write_queue: int
    max_inline_candidates: int | Unset = 5000
    max_k: int | Unset = 256
    max_page: int | Unset = 1000
    max_queries: int | Unset = 256
    max_query_chars: int | Unset = 8192
    max_text_chars: int | Unset = 32768

    def to_dict(self) -> dict[str, Any]:
        compute_queue = self.compute_queue

        max_body_bytes = self.max_body_bytes

        max_import_bytes = self.max_import_bytes

        max_prompt_chars = self.max_prompt_chars

        max_request_cost = self.max_request_cost

        max_response_chars = self.max_response_chars

        max_upsert_batch = self.max_upsert_batch

        request_timeout_s = self.request_timeout_s

        write_queue = self.write_queue

        max_inline_candidates = self.max_inline_candidates

        max_k = self.max_k

        max_page = self.max_page

        max_queries = self.max_queries

        max_query_chars = self.max_query_chars

        max_text_chars = self.max_text_chars

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "compute_queue": compute_queue,
                "max_body_bytes": max_body_bytes,
                "max_import_bytes": max_import_bytes,
                "max_prompt_chars": max_prompt_chars,
                "max_request_cost": max_request_cost,
                "max_response_chars": max_response_chars,
                "max_upsert_batch": max_upsert_batch,
                "request_timeout_s": request_timeout_s,
                "write_queue": write_queue,
            }
        )
        if max_inline_candidates is not UNSET:
            field_dict["max_inline_candidates"] = max_inline_candidates
        if max_k is not UNSET:
            field_dict["max_k"] = max_k
        if max_page is not UNSET:
            field_dict["max_page"] = max_page
        if max_queries is not UNSET:
            field_dict["max_queries"] = max_queries
        if max_query_chars is not UNSET:
            field_dict["max_query_chars"] = max_query_chars
        if max_text_chars is not UNSET:
            field_dict["max_text_chars"] = max_text_chars

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        compute_queue = d.pop("compute_queue")

        max_body_bytes = d.pop("max_body_bytes")

        max_import_bytes = d.pop("max_import_bytes")

        max_prompt_chars = d.pop("max_prompt_chars")

        max_request_cost = d.pop("max_request_cost")

        max_response_chars = d.pop("max_response_chars")

        max_upsert_batch = d.pop("max_upsert_batch")

        request_timeout_s = d.pop("request_timeout_s")

        write_queue = d.pop("write_queue")

        max_inline_candidates = d.pop("max_inline_candidates", UNSET)

        max_k = d.pop("max_k", UNSET)

        max_page = d.pop("max_page", UNSET)

        max_queries = d.pop("max_queries", UNSET)

        max_query_chars = d.pop("max_query_chars", UNSET)

        max_text_chars = d.pop("max_text_chars", UNSET)

        limits = cls(
            compute_queue=compute_queue,
            max_body_bytes=max_body_bytes,
            max_import_bytes=max_import_bytes,
            max_prompt_chars=max_prompt_chars,
            max_request_cost=max_request_cost,
            max_response_chars=max_response_chars,
            max_upsert_batch=max_upsert_batch,
            request_timeout_s=request_timeout_s,
            write_queue=write_queue,
            max_inline_candidates=max_inline_candidates,
            max_k=max_k,
            max_page=max_page,
            max_queries=max_queries,
            max_query_chars=max_query_chars,
            max_text_chars=max_text_chars,
        )

        return limits
