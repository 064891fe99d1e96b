from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.tau_source import TauSource, check_tau_source
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.baselines import Baselines
    from ..models.bounds_by_k import BoundsByK
    from ..models.chat_message import ChatMessage
    from ..models.label_distribution import LabelDistribution
    from ..models.prefix_slice import PrefixSlice
    from ..models.selected_example import SelectedExample
    from ..models.subset import Subset
    from ..models.timings import Timings


T = TypeVar("T", bound="Selection")


@_attrs_define
class Selection:
    """The chosen examples in prompt order, the rendered prompt, and how good the set is.

    Attributes:
        baselines (Baselines):
        bias_bound (float): C * mmd (C: bias_constant): the bound on the bias of what the model distils from this
            prompt, in the units of C.
        bound (float): C * mmd + R / sqrt(k) (R: complexity_constant): bias plus the finite-k term.
        examples (list[SelectedExample]): The demonstrations, in prompt order.
        joint (bool): Matched the joint (input, label) distribution.
        k (int): Demonstrations chosen.
        kernel (str): The kernel that measured the MMD.
        method (str): How they were chosen (mmd, knn, mmr, random).
        mmd (float): MMD: sqrt(mmd2), lower is closer; what bias_bound scales.
        mmd2 (float): Squared MMD between the chosen set and the target (kernel units, >= 0).
        prefiltered (bool): Chose among a prefilter's candidates (large pools).
        prompt (str): The demonstrations through template, joined by separator, then the query through query_template
            (query only).
        subsets (list[Subset]): The best num_subsets subsets, best first (the first is this selection).
        tau (float): The kernel's bandwidth used.
        tau_source (TauSource):
        timings (Timings): Milliseconds: loading the pool (0 when it was ready), embedding the target,
            scanning/prefiltering the pool, greedy, refinement; the total includes the load.
        bounds_by_k (BoundsByK | None | Unset): Auto-k: bound of each k.
        messages (list[ChatMessage] | None | Unset): format messages only (else null): OpenAI-style chat messages. The
            system text, if given; per demonstration, in prompt order, a user message (the template up to {output},
            rendered, trailing whitespace stripped) and an assistant message (the template from {output} on, rendered and
            stripped; the output alone when the template has no {output}); then the query through query_template as the last
            user message (query only).
        prefix (None | PrefixSlice | Unset): With a prefix only: the prompt's cacheable and per-query parts. Then
            examples are the slice's, k its size, and mmd2, mmd, bias_bound and bound those of the whole prompt (prefix and
            slice).
        target_label_distribution (LabelDistribution | None | Unset): Labelled pools: the label distribution estimated
            for the target.
    """

    baselines: Baselines
    bias_bound: float
    bound: float
    examples: list[SelectedExample]
    joint: bool
    k: int
    kernel: str
    method: str
    mmd: float
    mmd2: float
    prefiltered: bool
    prompt: str
    subsets: list[Subset]
    tau: float
    tau_source: TauSource
    timings: Timings
    bounds_by_k: BoundsByK | None | Unset = UNSET
    messages: list[ChatMessage] | None | Unset = UNSET
    prefix: None | PrefixSlice | Unset = UNSET
    target_label_distribution: LabelDistribution | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.bounds_by_k import BoundsByK  # noqa: PLC0415
        from ..models.label_distribution import LabelDistribution  # noqa: PLC0415
        from ..models.prefix_slice import PrefixSlice  # noqa: PLC0415

        baselines = self.baselines.to_dict()

        bias_bound = self.bias_bound

        bound = self.bound

        examples = []
        for examples_item_data in self.examples:
            examples_item = examples_item_data.to_dict()
            examples.append(examples_item)

        joint = self.joint

        k = self.k

        kernel = self.kernel

        method = self.method

        mmd = self.mmd

        mmd2 = self.mmd2

        prefiltered = self.prefiltered

        prompt = self.prompt

        subsets = []
        for subsets_item_data in self.subsets:
            subsets_item = subsets_item_data.to_dict()
            subsets.append(subsets_item)

        tau = self.tau

        tau_source: str = self.tau_source

        timings = self.timings.to_dict()

        bounds_by_k: dict[str, Any] | None | Unset
        if isinstance(self.bounds_by_k, Unset):
            bounds_by_k = UNSET
        elif isinstance(self.bounds_by_k, BoundsByK):
            bounds_by_k = self.bounds_by_k.to_dict()
        else:
            bounds_by_k = self.bounds_by_k

        messages: list[dict[str, Any]] | None | Unset
        if isinstance(self.messages, Unset):
            messages = UNSET
        elif isinstance(self.messages, list):
            messages = []
            for messages_type_0_item_data in self.messages:
                messages_type_0_item = messages_type_0_item_data.to_dict()
                messages.append(messages_type_0_item)

        else:
            messages = self.messages

        prefix: dict[str, Any] | None | Unset
        if isinstance(self.prefix, Unset):
            prefix = UNSET
        elif isinstance(self.prefix, PrefixSlice):
            prefix = self.prefix.to_dict()
        else:
            prefix = self.prefix

        target_label_distribution: dict[str, Any] | None | Unset
        if isinstance(self.target_label_distribution, Unset):
            target_label_distribution = UNSET
        elif isinstance(self.target_label_distribution, LabelDistribution):
            target_label_distribution = self.target_label_distribution.to_dict()
        else:
            target_label_distribution = self.target_label_distribution

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "baselines": baselines,
                "bias_bound": bias_bound,
                "bound": bound,
                "examples": examples,
                "joint": joint,
                "k": k,
                "kernel": kernel,
                "method": method,
                "mmd": mmd,
                "mmd2": mmd2,
                "prefiltered": prefiltered,
                "prompt": prompt,
                "subsets": subsets,
                "tau": tau,
                "tau_source": tau_source,
                "timings": timings,
            }
        )
        if bounds_by_k is not UNSET:
            field_dict["bounds_by_k"] = bounds_by_k
        if messages is not UNSET:
            field_dict["messages"] = messages
        if prefix is not UNSET:
            field_dict["prefix"] = prefix
        if target_label_distribution is not UNSET:
            field_dict["target_label_distribution"] = target_label_distribution

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.baselines import Baselines  # noqa: PLC0415
        from ..models.bounds_by_k import BoundsByK  # noqa: PLC0415
        from ..models.chat_message import ChatMessage  # noqa: PLC0415
        from ..models.label_distribution import LabelDistribution  # noqa: PLC0415
        from ..models.prefix_slice import PrefixSlice  # noqa: PLC0415
        from ..models.selected_example import SelectedExample  # noqa: PLC0415
        from ..models.subset import Subset  # noqa: PLC0415
        from ..models.timings import Timings  # noqa: PLC0415

        d = dict(src_dict)
        baselines = Baselines.from_dict(d.pop("baselines"))

        bias_bound = d.pop("bias_bound")

        bound = d.pop("bound")

        examples = []
        _examples = d.pop("examples")
        for examples_item_data in _examples:
            examples_item = SelectedExample.from_dict(examples_item_data)

            examples.append(examples_item)

        joint = d.pop("joint")

        k = d.pop("k")

        kernel = d.pop("kernel")

        method = d.pop("method")

        mmd = d.pop("mmd")

        mmd2 = d.pop("mmd2")

        prefiltered = d.pop("prefiltered")

        prompt = d.pop("prompt")

        subsets = []
        _subsets = d.pop("subsets")
        for subsets_item_data in _subsets:
            subsets_item = Subset.from_dict(subsets_item_data)

            subsets.append(subsets_item)

        tau = d.pop("tau")

        tau_source = check_tau_source(d.pop("tau_source"))

        timings = Timings.from_dict(d.pop("timings"))

        def _parse_bounds_by_k(data: object) -> BoundsByK | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                bounds_by_k_type_0 = BoundsByK.from_dict(data)

                return bounds_by_k_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(BoundsByK | None | Unset, data)

        bounds_by_k = _parse_bounds_by_k(d.pop("bounds_by_k", UNSET))

        def _parse_messages(data: object) -> list[ChatMessage] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                messages_type_0 = []
                _messages_type_0 = data
                for messages_type_0_item_data in _messages_type_0:
                    messages_type_0_item = ChatMessage.from_dict(messages_type_0_item_data)

                    messages_type_0.append(messages_type_0_item)

                return messages_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[ChatMessage] | None | Unset, data)

        messages = _parse_messages(d.pop("messages", UNSET))

        def _parse_prefix(data: object) -> None | PrefixSlice | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                prefix_type_0 = PrefixSlice.from_dict(data)

                return prefix_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | PrefixSlice | Unset, data)

        prefix = _parse_prefix(d.pop("prefix", UNSET))

        def _parse_target_label_distribution(data: object) -> LabelDistribution | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                target_label_distribution_type_0 = LabelDistribution.from_dict(data)

                return target_label_distribution_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(LabelDistribution | None | Unset, data)

        target_label_distribution = _parse_target_label_distribution(d.pop("target_label_distribution", UNSET))

        selection = cls(
            baselines=baselines,
            bias_bound=bias_bound,
            bound=bound,
            examples=examples,
            joint=joint,
            k=k,
            kernel=kernel,
            method=method,
            mmd=mmd,
            mmd2=mmd2,
            prefiltered=prefiltered,
            prompt=prompt,
            subsets=subsets,
            tau=tau,
            tau_source=tau_source,
            timings=timings,
            bounds_by_k=bounds_by_k,
            messages=messages,
            prefix=prefix,
            target_label_distribution=target_label_distribution,
        )

        return selection
