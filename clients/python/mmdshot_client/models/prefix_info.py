from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.prefix_info_source import PrefixInfoSource, check_prefix_info_source

if TYPE_CHECKING:
    from ..models.prefix_example import PrefixExample


T = TypeVar("T", bound="PrefixInfo")


@_attrs_define
class PrefixInfo:
    """A stored prefix.

    Attributes:
        created_at (float): Seconds since the epoch.
        created_at_iso (str): created_at as an ISO-8601 UTC timestamp.
        examples (list[PrefixExample]): Its examples in prompt order, as built (what prefix_prompt renders).
        ids (list[str]): Its example ids, in prompt order (fixed).
        k (int): Its examples.
        mmd (float): MMD of the prefix to its target, when built.
        mmd2 (float): Squared MMD of the prefix to its target, when built.
        name (str): The prefix's name.
        pool (str): Its pool.
        pool_version (int): The pool version it was built at.
        prefix_hash (str): sha256 (hex) of its rendered text block.
        prefix_prompt (str): Its block, rendered once with its template.
        prefix_tokens (int): Tokens of prefix_prompt (the pool's tokenizer).
        separator (str): Between demonstrations, and before the slice.
        source (PrefixInfoSource): What its target was.
        stale (bool): One of its examples changed or was deleted since it was built: rebuild it.
        target_size (int): Points of that target.
        template (str): Each demonstration's template.
        updated_at (float): Seconds since the epoch: the last change.
        updated_at_iso (str): updated_at as an ISO-8601 UTC timestamp.
    """

    created_at: float
    created_at_iso: str
    examples: list[PrefixExample]
    ids: list[str]
    k: int
    mmd: float
    mmd2: float
    name: str
    pool: str
    pool_version: int
    prefix_hash: str
    prefix_prompt: str
    prefix_tokens: int
    separator: str
    source: PrefixInfoSource
    stale: bool
    target_size: int
    template: str
    updated_at: float
    updated_at_iso: str

    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at

        created_at_iso = self.created_at_iso

        examples = []
        for examples_item_data in self.examples:
            examples_item = examples_item_data.to_dict()
            examples.append(examples_item)

        ids = self.ids

        k = self.k

        mmd = self.mmd

        mmd2 = self.mmd2

        name = self.name

        pool = self.pool

        pool_version = self.pool_version

        prefix_hash = self.prefix_hash

        prefix_prompt = self.prefix_prompt

        prefix_tokens = self.prefix_tokens

        separator = self.separator

        source: str = self.source

        stale = self.stale

        target_size = self.target_size

        template = self.template

        updated_at = self.updated_at

        updated_at_iso = self.updated_at_iso

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "created_at": created_at,
                "created_at_iso": created_at_iso,
                "examples": examples,
                "ids": ids,
                "k": k,
                "mmd": mmd,
                "mmd2": mmd2,
                "name": name,
                "pool": pool,
                "pool_version": pool_version,
                "prefix_hash": prefix_hash,
                "prefix_prompt": prefix_prompt,
                "prefix_tokens": prefix_tokens,
                "separator": separator,
                "source": source,
                "stale": stale,
                "target_size": target_size,
                "template": template,
                "updated_at": updated_at,
                "updated_at_iso": updated_at_iso,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.prefix_example import PrefixExample  # noqa: PLC0415

        d = dict(src_dict)
        created_at = d.pop("created_at")

        created_at_iso = d.pop("created_at_iso")

        examples = []
        _examples = d.pop("examples")
        for examples_item_data in _examples:
            examples_item = PrefixExample.from_dict(examples_item_data)

            examples.append(examples_item)

        ids = cast(list[str], d.pop("ids"))

        k = d.pop("k")

        mmd = d.pop("mmd")

        mmd2 = d.pop("mmd2")

        name = d.pop("name")

        pool = d.pop("pool")

        pool_version = d.pop("pool_version")

        prefix_hash = d.pop("prefix_hash")

        prefix_prompt = d.pop("prefix_prompt")

        prefix_tokens = d.pop("prefix_tokens")

        separator = d.pop("separator")

        source = check_prefix_info_source(d.pop("source"))

        stale = d.pop("stale")

        target_size = d.pop("target_size")

        template = d.pop("template")

        updated_at = d.pop("updated_at")

        updated_at_iso = d.pop("updated_at_iso")

        prefix_info = cls(
            created_at=created_at,
            created_at_iso=created_at_iso,
            examples=examples,
            ids=ids,
            k=k,
            mmd=mmd,
            mmd2=mmd2,
            name=name,
            pool=pool,
            pool_version=pool_version,
            prefix_hash=prefix_hash,
            prefix_prompt=prefix_prompt,
            prefix_tokens=prefix_tokens,
            separator=separator,
            source=source,
            stale=stale,
            target_size=target_size,
            template=template,
            updated_at=updated_at,
            updated_at_iso=updated_at_iso,
        )

        return prefix_info
