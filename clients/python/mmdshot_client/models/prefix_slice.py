from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="PrefixSlice")


@_attrs_define
class PrefixSlice:
    """A selection with a prefix: the prompt's two parts. ``prompt`` is ``prefix_prompt``, the
    prefix's separator, then ``slice_prompt``; with format messages the first
    ``prefix_messages`` messages are the system text (if any) and the prefix's.

        Attributes:
            name (str): The prefix.
            pinned (int): Prefix examples the slice was conditioned on (those still in the pool).
            prefix_hash (str): sha256 (hex) of prefix_prompt: equal on every call until the prefix is rebuilt, so a client
                can check that the provider's prefix cache can hit.
            prefix_ids (list[str]): The prefix's example ids, in prompt order.
            prefix_prompt (str): The prefix's block, as stored (byte-identical).
            prefix_tokens (int): Tokens of prefix_prompt (the pool's tokenizer).
            slice_mmd (float): MMD of the slice alone: sqrt(slice_mmd2).
            slice_mmd2 (float): Squared MMD of the slice alone to the target.
            slice_prompt (str): The rest of the prompt: the slice's demonstrations (most relevant last by default) and the
                query.
            slice_tokens (int): Tokens of slice_prompt (the pool's tokenizer).
            stale (bool): A prefix example changed or was deleted since the prefix was built; its block is served unchanged,
                and the bounds count those still in the pool.
            prefix_messages (int | None | Unset): format messages: how many of messages come before the slice's (the system
                text and the prefix's pairs).
    """

    name: str
    pinned: int
    prefix_hash: str
    prefix_ids: list[str]
    prefix_prompt: str
    prefix_tokens: int
    slice_mmd: float
    slice_mmd2: float
    slice_prompt: str
    slice_tokens: int
    stale: bool
    prefix_messages: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        pinned = self.pinned

        prefix_hash = self.prefix_hash

        prefix_ids = self.prefix_ids

        prefix_prompt = self.prefix_prompt

        prefix_tokens = self.prefix_tokens

        slice_mmd = self.slice_mmd

        slice_mmd2 = self.slice_mmd2

        slice_prompt = self.slice_prompt

        slice_tokens = self.slice_tokens

        stale = self.stale

        prefix_messages: int | None | Unset
        if isinstance(self.prefix_messages, Unset):
            prefix_messages = UNSET
        else:
            prefix_messages = self.prefix_messages

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "pinned": pinned,
                "prefix_hash": prefix_hash,
                "prefix_ids": prefix_ids,
                "prefix_prompt": prefix_prompt,
                "prefix_tokens": prefix_tokens,
                "slice_mmd": slice_mmd,
                "slice_mmd2": slice_mmd2,
                "slice_prompt": slice_prompt,
                "slice_tokens": slice_tokens,
                "stale": stale,
            }
        )
        if prefix_messages is not UNSET:
            field_dict["prefix_messages"] = prefix_messages

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        pinned = d.pop("pinned")

        prefix_hash = d.pop("prefix_hash")

        prefix_ids = cast(list[str], d.pop("prefix_ids"))

        prefix_prompt = d.pop("prefix_prompt")

        prefix_tokens = d.pop("prefix_tokens")

        slice_mmd = d.pop("slice_mmd")

        slice_mmd2 = d.pop("slice_mmd2")

        slice_prompt = d.pop("slice_prompt")

        slice_tokens = d.pop("slice_tokens")

        stale = d.pop("stale")

        def _parse_prefix_messages(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        prefix_messages = _parse_prefix_messages(d.pop("prefix_messages", UNSET))

        prefix_slice = cls(
            name=name,
            pinned=pinned,
            prefix_hash=prefix_hash,
            prefix_ids=prefix_ids,
            prefix_prompt=prefix_prompt,
            prefix_tokens=prefix_tokens,
            slice_mmd=slice_mmd,
            slice_mmd2=slice_mmd2,
            slice_prompt=slice_prompt,
            slice_tokens=slice_tokens,
            stale=stale,
            prefix_messages=prefix_messages,
        )

        return prefix_slice
