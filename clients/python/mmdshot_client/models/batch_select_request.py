from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..models.batch_select_request_format import BatchSelectRequestFormat, check_batch_select_request_format
from ..models.kernel import Kernel, check_kernel
from ..models.method import Method, check_method
from ..models.prompt_order import PromptOrder, check_prompt_order
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.constraints_in import ConstraintsIn


T = TypeVar("T", bound="BatchSelectRequest")


@_attrs_define
class BatchSelectRequest:
    """Many independent single-query selections, computed as one batch.

    Attributes:
        queries (list[str]):
        bias_constant (float | Unset): C in bias_bound = C * mmd and bound = C * mmd + R / sqrt(k): the Lipschitz
            constant of what the model distils from its prompt, in units of the task's loss per unit of MMD. 1 reads the
            bounds in units of MMD. Default: 1.0.
        compare_baselines (bool | Unset): Report the mmd2 of knn and random. Default: True.
        complexity_constant (float | Unset): R in bound = C * mmd + R / sqrt(k): the weight of the finite-k term (auto-k
            trades it against mmd). 0 leaves the bias bound alone. Default: 1.0.
        constraints (ConstraintsIn | None | Unset):
        format_ (BatchSelectRequestFormat | Unset): text: the prompt only; messages: also the demonstrations as chat
            messages (messages: the optional system text, a user/assistant pair per demonstration, then the query as the
            last user message). Default: 'text'.
        joint (bool | None | Unset): Match the joint (input, label) distribution; default: when labelled.
        k (int | None | Unset): Subset size (default 8).
        k_max (int | None | Unset): Auto-k: largest k tried.
        k_min (int | None | Unset): Auto-k: smallest k tried.
        kernel (Kernel | Unset):
        method (Method | Unset):
        num_subsets (int | Unset):  Default: 1.
        order (PromptOrder | Unset):
        prefix (None | str | Unset): A prefix of this pool (POST /v1/pools/{pool}/prefixes): the prompt is its block
            (byte-identical on every call), then a slice of k examples chosen by the greedy conditioned on the prefix's
            examples, then the query.
        query_template (str | Unset): The query after the demonstrations: the bare field {query}; {{ and }} are literal
            braces. When unset it follows template: its text up to {output} with {input} as {query} ('Tweet:
            {input}\\nSentiment: {output}' gives 'Tweet: {query}\\nSentiment:'); this default when the template has no
            {input} before {output}, or other fields there. Default: 'Input: {query}\\nOutput:'.
        seed (int | Unset):  Default: 0.
        separator (str | Unset):  Default: '\\n\\n'.
        system (None | str | Unset): With format messages: the first message's text, role system.
        tau (float | Literal['median'] | None | Unset): Bandwidth in [0.0001, 1000] (below it float32 rounding distorts
            the kernel); null: the pool's calibrated tau when it has one (for its kernel, method mmd), else 0.2 for softmax
            and the median heuristic otherwise.
        template (str | Unset): Each demonstration: bare fields {id} {input} {output} {label} only (no format spec,
            conversion, attribute or index); {{ and }} are literal braces. Default: 'Input: {input}\\nOutput: {output}'.
    """

    queries: list[str]
    bias_constant: float | Unset = 1.0
    compare_baselines: bool | Unset = True
    complexity_constant: float | Unset = 1.0
    constraints: ConstraintsIn | None | Unset = UNSET
    format_: BatchSelectRequestFormat | Unset = "text"
    joint: bool | None | Unset = UNSET
    k: int | None | Unset = UNSET
    k_max: int | None | Unset = UNSET
    k_min: int | None | Unset = UNSET
    kernel: Kernel | Unset = UNSET
    method: Method | Unset = UNSET
    num_subsets: int | Unset = 1
    order: PromptOrder | Unset = UNSET
    prefix: None | str | Unset = UNSET
    query_template: str | Unset = "Input: {query}\nOutput:"
    seed: int | Unset = 0
    separator: str | Unset = "\n\n"
    system: None | str | Unset = UNSET
    tau: float | Literal["median"] | None | Unset = UNSET
    template: str | Unset = "Input: {input}\nOutput: {output}"

    def to_dict(self) -> dict[str, Any]:
        from ..models.constraints_in import ConstraintsIn  # noqa: PLC0415

        queries = self.queries

        bias_constant = self.bias_constant

        compare_baselines = self.compare_baselines

        complexity_constant = self.complexity_constant

        constraints: dict[str, Any] | None | Unset
        if isinstance(self.constraints, Unset):
            constraints = UNSET
        elif isinstance(self.constraints, ConstraintsIn):
            constraints = self.constraints.to_dict()
        else:
            constraints = self.constraints

        format_: str | Unset = UNSET
        if not isinstance(self.format_, Unset):
            format_ = self.format_

        joint: bool | None | Unset
        if isinstance(self.joint, Unset):
            joint = UNSET
        else:
            joint = self.joint

        k: int | None | Unset
        if isinstance(self.k, Unset):
            k = UNSET
        else:
            k = self.k

        k_max: int | None | Unset
        if isinstance(self.k_max, Unset):
            k_max = UNSET
        else:
            k_max = self.k_max

        k_min: int | None | Unset
        if isinstance(self.k_min, Unset):
            k_min = UNSET
        else:
            k_min = self.k_min

        kernel: str | Unset = UNSET
        if not isinstance(self.kernel, Unset):
            kernel = self.kernel

        method: str | Unset = UNSET
        if not isinstance(self.method, Unset):
            method = self.method

        num_subsets = self.num_subsets

        order: str | Unset = UNSET
        if not isinstance(self.order, Unset):
            order = self.order

        prefix: None | str | Unset
        if isinstance(self.prefix, Unset):
            prefix = UNSET
        else:
            prefix = self.prefix

        query_template = self.query_template

        seed = self.seed

        separator = self.separator

        system: None | str | Unset
        if isinstance(self.system, Unset):
            system = UNSET
        else:
            system = self.system

        tau: float | Literal["median"] | None | Unset
        if isinstance(self.tau, Unset):
            tau = UNSET
        else:
            tau = self.tau

        template = self.template

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "queries": queries,
            }
        )
        if bias_constant is not UNSET:
            field_dict["bias_constant"] = bias_constant
        if compare_baselines is not UNSET:
            field_dict["compare_baselines"] = compare_baselines
        if complexity_constant is not UNSET:
            field_dict["complexity_constant"] = complexity_constant
        if constraints is not UNSET:
            field_dict["constraints"] = constraints
        if format_ is not UNSET:
            field_dict["format"] = format_
        if joint is not UNSET:
            field_dict["joint"] = joint
        if k is not UNSET:
            field_dict["k"] = k
        if k_max is not UNSET:
            field_dict["k_max"] = k_max
        if k_min is not UNSET:
            field_dict["k_min"] = k_min
        if kernel is not UNSET:
            field_dict["kernel"] = kernel
        if method is not UNSET:
            field_dict["method"] = method
        if num_subsets is not UNSET:
            field_dict["num_subsets"] = num_subsets
        if order is not UNSET:
            field_dict["order"] = order
        if prefix is not UNSET:
            field_dict["prefix"] = prefix
        if query_template is not UNSET:
            field_dict["query_template"] = query_template
        if seed is not UNSET:
            field_dict["seed"] = seed
        if separator is not UNSET:
            field_dict["separator"] = separator
        if system is not UNSET:
            field_dict["system"] = system
        if tau is not UNSET:
            field_dict["tau"] = tau
        if template is not UNSET:
            field_dict["template"] = template

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.constraints_in import ConstraintsIn  # noqa: PLC0415

        d = dict(src_dict)
        queries = cast(list[str], d.pop("queries"))

        bias_constant = d.pop("bias_constant", UNSET)

        compare_baselines = d.pop("compare_baselines", UNSET)

        complexity_constant = d.pop("complexity_constant", UNSET)

        def _parse_constraints(data: object) -> ConstraintsIn | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                constraints_type_0 = ConstraintsIn.from_dict(data)

                return constraints_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(ConstraintsIn | None | Unset, data)

        constraints = _parse_constraints(d.pop("constraints", UNSET))

        _format_ = d.pop("format", UNSET)
        format_: BatchSelectRequestFormat | Unset
        if isinstance(_format_, Unset):
            format_ = UNSET
        else:
            format_ = check_batch_select_request_format(_format_)

        def _parse_joint(data: object) -> bool | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(bool | None | Unset, data)

        joint = _parse_joint(d.pop("joint", UNSET))

        def _parse_k(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        k = _parse_k(d.pop("k", UNSET))

        def _parse_k_max(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        k_max = _parse_k_max(d.pop("k_max", UNSET))

        def _parse_k_min(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        k_min = _parse_k_min(d.pop("k_min", UNSET))

        _kernel = d.pop("kernel", UNSET)
        kernel: Kernel | Unset
        if isinstance(_kernel, Unset):
            kernel = UNSET
        else:
            kernel = check_kernel(_kernel)

        _method = d.pop("method", UNSET)
        method: Method | Unset
        if isinstance(_method, Unset):
            method = UNSET
        else:
            method = check_method(_method)

        num_subsets = d.pop("num_subsets", UNSET)

        _order = d.pop("order", UNSET)
        order: PromptOrder | Unset
        if isinstance(_order, Unset):
            order = UNSET
        else:
            order = check_prompt_order(_order)

        def _parse_prefix(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        prefix = _parse_prefix(d.pop("prefix", UNSET))

        query_template = d.pop("query_template", UNSET)

        seed = d.pop("seed", UNSET)

        separator = d.pop("separator", UNSET)

        def _parse_system(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        system = _parse_system(d.pop("system", UNSET))

        def _parse_tau(data: object) -> float | Literal["median"] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            tau_type_1 = cast(Literal["median"], data)
            if tau_type_1 != "median":
                raise ValueError(f"tau_type_1 must match const 'median', got '{tau_type_1}'")
            return tau_type_1
            return cast(float | Literal["median"] | None | Unset, data)

        tau = _parse_tau(d.pop("tau", UNSET))

        template = d.pop("template", UNSET)

        batch_select_request = cls(
            queries=queries,
            bias_constant=bias_constant,
            compare_baselines=compare_baselines,
            complexity_constant=complexity_constant,
            constraints=constraints,
            format_=format_,
            joint=joint,
            k=k,
            k_max=k_max,
            k_min=k_min,
            kernel=kernel,
            method=method,
            num_subsets=num_subsets,
            order=order,
            prefix=prefix,
            query_template=query_template,
            seed=seed,
            separator=separator,
            system=system,
            tau=tau,
            template=template,
        )

        return batch_select_request
