"""Request and response models. Hard limits live here so oversized input is refused by
validation (422) before any compute; the body-size limit (413) lives in the settings."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    model_validator,
)
from typing_extensions import TypeAliasType

from selector.kernels import KERNEL_NAMES
from selector.search import METHODS

MAX_K = 256
MAX_QUERY_CHARS = 8_192
MAX_TEXT_CHARS = 32_768
MAX_QUERIES = 256
MAX_TARGET_TEXTS = 1_024
MAX_INLINE_CANDIDATES = 5_000
MAX_UPSERT_BATCH = 1_000
MAX_PAGE = 1_000
MAX_SUBSETS = 16
MAX_TAUS = 16
MAX_VALIDATION_SIZE = 10_000
# The kernels stay finite and accurate down to MIN_TAU: the float32 rounding of <x, x> - 1
# (about 1e-7) divided by tau is at most 1e-3 there, while at tau 1e-8 the softmax kernel's
# exp(error / tau) already reaches e^10 and at 1e-11 overflows (mmd2 inf).
MIN_TAU = 1e-4
MAX_TAU = 1_000.0
QUERY_FIELDS = frozenset({"query"})
POOL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
EXAMPLE_ID_PATTERN = r"^[^\s/][^/]{0,127}$"
DEFAULT_TEMPLATE = "Input: {input}\nOutput: {output}"
DEFAULT_QUERY_TEMPLATE = "Input: {query}\nOutput:"
EXAMPLE_FIELDS = frozenset({"id", "input", "output", "label"})

# Named aliases become one shared OpenAPI component each (``Kernel``, ``Metadata``, ...), so a
# generated client has one type per concept rather than one per model that uses it.
Kernel = TypeAliasType("Kernel", Literal["softmax", "rbf", "laplace", "cosine"])
Method = TypeAliasType("Method", Literal["mmd", "knn", "mmr", "random"])
PromptOrder = TypeAliasType("PromptOrder", Literal["relevance_last", "selection"])
TauSource = TypeAliasType("TauSource", Literal["request", "calibrated", "default"])
CalibrationScorer = TypeAliasType("CalibrationScorer", Literal["label_purity", "output_similarity"])
assert set(Kernel.__value__.__args__) == set(KERNEL_NAMES)
assert set(Method.__value__.__args__) == set(METHODS)

PoolName = Annotated[str, Field(pattern=POOL_NAME_PATTERN, examples=["tweets"])]
ExampleId = Annotated[str, Field(pattern=EXAMPLE_ID_PATTERN, examples=["ex-1"])]
QueryText = Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS)]
MetadataValue = str | int | float | bool | None
Metadata = TypeAliasType("Metadata", Annotated[dict[str, MetadataValue], Field(max_length=64)])


class Model(BaseModel):
    """Base of every model: unknown fields and NaN/infinite numbers are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def iso8601(epoch: float) -> str:
    """Seconds since the epoch as an ISO-8601 UTC timestamp."""
    return datetime.fromtimestamp(epoch, UTC).isoformat()


class ErrorInfo(Model):
    type: str = Field(
        description="Machine-readable kind (docs/api.md lists them).", examples=["not_found"]
    )
    message: str = Field(
        description="What went wrong, for a person.", examples=["pool 'tweets' does not exist"]
    )
    detail: Any = Field(
        default=None, description="Structured context: the invalid fields, the names, ..."
    )


class ErrorBody(Model):
    """The body of every error response."""

    error: ErrorInfo = Field(description="The error.")


# --- pools and examples -------------------------------------------------------------------


class TauScore(Model):
    tau: float = Field(description="A candidate bandwidth.", examples=[0.1])
    score: float = Field(
        description="Its score on the held-out examples (0 to 1; higher is better).",
        examples=[0.71],
    )


class Calibration(Model):
    """A pool's calibrated softmax bandwidth, chosen on a validation split carved from the pool:
    ``validation_size`` examples (drawn with ``seed``) held out, k demonstrations chosen for
    each from the rest under every candidate tau and by knn, each setting scored, the best tau
    kept (ties: the larger)."""

    tau: float = Field(description="The chosen bandwidth.", examples=[0.1])
    kernel: Kernel = Field(description="The kernel calibrated (softmax).")
    scores: list[TauScore] = Field(description="The score of every candidate tau, ascending tau.")
    knn_score: float = Field(description="knn's score on the same held-out examples.")
    beats_knn: bool = Field(description="Whether the chosen tau scores higher than knn.")
    scorer: CalibrationScorer = Field(
        description="label_purity: the share of demonstrations whose label equals the held-out "
        "example's (labelled pools); output_similarity: the mean cosine similarity of their "
        "outputs' embeddings to the held-out example's output (unlabelled pools)."
    )
    k: int = Field(description="Demonstrations chosen per held-out example.")
    validation_size: int = Field(description="Examples held out as queries.")
    seed: int = Field(description="The seed that drew the validation split.")
    pool_version: int = Field(description="The pool version it was computed at.")
    calibrated_at: float = Field(description="When it finished, in seconds since the epoch.")

    @computed_field(description="calibrated_at as an ISO-8601 UTC timestamp.")  # type: ignore[prop-decorator]
    @property
    def calibrated_at_iso(self) -> str:
        return iso8601(self.calibrated_at)


class PoolCalibration(Calibration):
    stale: bool = Field(
        description="The pool changed since (its version is past pool_version). Selections "
        "still use the calibrated tau; calibrate again to refresh it."
    )


class CalibrateRequest(Model):
    """What to calibrate: the candidate bandwidths, the k to select, the validation split."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"k": 8, "taus": [0.05, 0.1, 0.2]}]})

    k: int = Field(default=8, ge=1, le=MAX_K, description="Demonstrations per held-out example.")
    taus: list[Annotated[float, Field(ge=MIN_TAU, le=MAX_TAU)]] = Field(
        default=[0.05, 0.1, 0.2, 0.5], min_length=1, max_length=MAX_TAUS
    )
    validation_size: int = Field(
        default=300,
        ge=1,
        le=MAX_VALIDATION_SIZE,
        description="Examples held out as queries; at most the pool size minus k.",
    )
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="Draws the validation split.")


class PoolCreate(Model):
    name: PoolName
    description: str = Field(default="", max_length=1_000, examples=["support tickets, 3 labels"])
    tokenizer: str = Field(
        default="default",
        min_length=1,
        max_length=64,
        description="The tokenizer the pool counts its examples' tokens with (token_count, "
        "constraints.token_budget): one of /v1/info's tokenizers (MMDSHOT_TOKENIZERS); "
        "default: the embedding model's.",
        examples=["default"],
    )


class Stamped(Model):
    """When a pool or job was created and last changed: seconds since the epoch, and the same
    as ISO-8601 UTC timestamps."""

    created_at: float = Field(description="Seconds since the epoch.")
    updated_at: float = Field(description="Seconds since the epoch: the last change.")

    @computed_field(description="created_at as an ISO-8601 UTC timestamp.")  # type: ignore[prop-decorator]
    @property
    def created_at_iso(self) -> str:
        return iso8601(self.created_at)

    @computed_field(description="updated_at as an ISO-8601 UTC timestamp.")  # type: ignore[prop-decorator]
    @property
    def updated_at_iso(self) -> str:
        return iso8601(self.updated_at)


class PrefixBrief(Model):
    """A prefix as its pool lists it (GET /v1/pools/{pool}/prefixes/{name} has the rest)."""

    name: str = Field(description="The prefix's name.", examples=["shared"])
    k: int = Field(description="Its examples.")
    prefix_hash: str = Field(description="sha256 (hex) of its rendered text block.")
    stale: bool = Field(
        description="One of its examples changed or was deleted since it was built: rebuild it."
    )


class PoolInfo(Stamped):
    """A pool: its size, version (bumped by every change) and the model that embedded it."""

    name: str = Field(description="The pool's name.", examples=["tweets"])
    description: str = Field(description="Free text given at creation.")
    version: int = Field(
        description="Bumped by one by every call that changes the pool.", examples=[3]
    )
    size: int = Field(description="Examples stored.", examples=[1200])
    labelled: bool = Field(
        description="Every example has a label: selection uses the joint kernel."
    )
    model: str = Field(description="The embedding model.", examples=["all-MiniLM-L6-v2"])
    dimension: int = Field(description="The embeddings' dimension.", examples=[384])
    tokenizer: str = Field(
        description="The tokenizer of its token counts and budgets.", examples=["default"]
    )
    calibration: PoolCalibration | None = Field(
        default=None, description="The last calibration (POST /v1/pools/{pool}/calibrate)."
    )
    prefixes: list[PrefixBrief] = Field(
        default_factory=list, description="Its prefixes (POST /v1/pools/{pool}/prefixes), by name."
    )


class PoolList(Model):
    pools: list[PoolInfo] = Field(description="Every pool, by name.")


class ExampleIn(Model):
    """One demonstration. Without an ``id`` one is derived from its content."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"input": "the car drove itself", "output": "positive", "label": "positive"}
            ]
        }
    )

    id: ExampleId | None = Field(
        default=None, description="Its id; default: 16 hex digits of its content's hash."
    )
    input: str = Field(
        min_length=1, max_length=MAX_TEXT_CHARS, description="The demonstration's input."
    )
    output: str = Field(
        default="", max_length=MAX_TEXT_CHARS, description="The answer it demonstrates."
    )
    label: str | None = Field(
        default=None, min_length=1, max_length=256, description="Its class, if any."
    )
    metadata: Metadata = Field(
        default_factory=dict, description="Free fields (constraints.metadata_filter)."
    )


class Example(ExampleIn):
    """A stored demonstration."""

    id: str = Field(description="Its id.")
    token_count: int = Field(
        description="Tokens of input and output (the pool's tokenizer, without special tokens)."
    )


class ExamplesUpsert(Model):
    examples: list[ExampleIn] = Field(min_length=1, max_length=MAX_UPSERT_BATCH)


class Duplicate(Model):
    """An example of the request not stored because the pool holds the same content."""

    position: int = Field(description="Index of the example in the request (or line number).")
    existing_id: str = Field(description="The id of the stored example with that content.")


class UpsertResult(Model):
    pool: str = Field(description="The pool's name.")
    version: int = Field(description="The pool's version after the call.")
    inserted: list[str] = Field(description="Ids of the new examples.")
    updated: list[str] = Field(description="Ids whose content was replaced.")
    duplicates: list[Duplicate] = Field(description="Examples not stored: content already held.")


class ExamplePage(Model):
    examples: list[Example] = Field(description="In insertion order.")
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end."
    )


# --- imports ---------------------------------------------------------------------------------


class LineError(Model):
    line: int = Field(description="1-based line (JSONL) or element (JSON array) number.")
    message: str = Field(description="Why the record was refused.")


class Job(Stamped):
    """A background job, kept in the store: any replica may run it, and a job whose replica
    stopped resumes after its last committed chunk. An import: ``done`` of ``total`` records
    are committed (beside the pool, moved into it at the end in one version) or rejected
    (``total`` is 0 until the job has counted them). A calibration:
    ``done`` of ``total`` settings (each tau, and knn) are scored, and ``calibration`` holds
    the result once it succeeded."""

    id: str = Field(description="The job's id (GET /v1/jobs/{id}).")
    kind: Literal["import", "calibration"] = Field(description="What it does.")
    pool: str = Field(description="The pool it works on.")
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"] = Field(
        description="queued and running are not final; cancelled: POST /v1/jobs/{id}/cancel."
    )
    resumable: bool = Field(
        default=False,
        description="A failed job that POST /v1/jobs/{job_id}/resume continues (it failed "
        "for want of storage space).",
    )
    total: int = Field(
        description="Records (import; 0 until the job has counted them) or settings "
        "(calibration) to process."
    )
    done: int = Field(description="Of total, processed so far.")
    inserted: int = Field(description="Import: new examples stored (0 until it succeeded).")
    updated: int = Field(
        description="Import: examples whose content was replaced (0 until it succeeded)."
    )
    duplicates: int = Field(
        description="Import: records whose content the pool held (0 until it succeeded)."
    )
    errors: list[LineError] = Field(description="Import: the records refused.")
    message: str | None = Field(default=None, description="Why it failed, when it did.")
    calibration: Calibration | None = Field(
        default=None, description="Calibration: the result, once it succeeded."
    )


# --- selection ---------------------------------------------------------------------------------


def template_parts(template: str, fields: frozenset[str]) -> list[tuple[str, str | None]]:
    """``template`` as ``(literal text, field name or None)`` pairs; ``ValueError`` naming
    the problem unless every replacement field is a bare name from ``fields``: no format spec
    (``{input:>99999}``, ``{input:{output}}``), no conversion (``{input!r}``), no attribute or
    index access (``{input.x}``, ``{input[0]}``), no positional field (``{}``, ``{0}``).
    ``{{`` and ``}}`` stand for literal braces. Rendering joins the parts, never calls
    ``str.format``, so stored text is never read as a spec."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"malformed template: {exc}") from exc
    parts: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in parsed:
        if name is None:
            parts.append((literal, None))
            continue
        shown = (
            "{"
            + name
            + ("!" + conversion if conversion else "")
            + (":" + spec if spec else "")
            + "}"
        )
        if name == "" or name.isdigit():
            raise ValueError(f"template field {shown}: positional fields are not allowed")
        if conversion is not None:
            raise ValueError(f"template field {shown}: a conversion is not allowed")
        if spec:
            raise ValueError(f"template field {shown}: a format spec is not allowed")
        if name not in fields:
            raise ValueError(
                f"template field {name!r} is not one of {sorted(fields)} "
                "(no attribute or index access)"
            )
        parts.append((literal, name))
    return parts


def _check_template(template: str, fields: frozenset[str]) -> str:
    template_parts(template, fields)
    return template


class Quota(Model):
    min: int | None = Field(default=None, ge=0, le=MAX_K)
    max: int | None = Field(default=None, ge=0, le=MAX_K)


LabelQuotas = TypeAliasType("LabelQuotas", Annotated[dict[str, Quota], Field(max_length=1_000)])


class ConstraintsIn(Model):
    """Constraints on the chosen set; every field optional."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"token_budget": 400, "label_quotas": {"negative": {"min": 1}}}]
        }
    )

    token_budget: int | None = Field(
        default=None, ge=0, description="Sum of the chosen token counts."
    )
    label_quotas: LabelQuotas | None = None
    balance_labels: bool = False
    metadata_filter: Metadata | None = None
    exclude_ids: list[str] = Field(default_factory=list, max_length=100_000)
    dedup_threshold: float | None = Field(default=None, ge=-1.0, le=1.0, description="Max cosine.")


class SelectionOptions(Model):
    """How to select and how to render the prompt."""

    k: int | None = Field(default=None, ge=1, le=MAX_K, description="Subset size (default 8).")
    k_min: int | None = Field(default=None, ge=1, le=MAX_K, description="Auto-k: smallest k tried.")
    k_max: int | None = Field(default=None, ge=1, le=MAX_K, description="Auto-k: largest k tried.")
    kernel: Kernel = "softmax"
    tau: Annotated[float, Field(ge=MIN_TAU, le=MAX_TAU)] | Literal["median"] | None = Field(
        None,
        description=f"Bandwidth in [{MIN_TAU:g}, {MAX_TAU:g}] (below it float32 rounding "
        "distorts the kernel); null: the pool's calibrated tau when it has one (for its "
        "kernel, method mmd), else 0.2 for softmax and the median heuristic otherwise.",
    )
    method: Method = "mmd"
    joint: bool | None = Field(
        None, description="Match the joint (input, label) distribution; default: when labelled."
    )
    constraints: ConstraintsIn | None = None
    num_subsets: int = Field(default=1, ge=1, le=MAX_SUBSETS)
    compare_baselines: bool = Field(default=True, description="Report the mmd2 of knn and random.")
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    order: PromptOrder = "relevance_last"
    template: str = Field(
        default=DEFAULT_TEMPLATE,
        max_length=4_096,
        description="Each demonstration: bare fields {id} {input} {output} {label} only (no "
        "format spec, conversion, attribute or index); {{ and }} are literal braces.",
    )
    query_template: str = Field(
        default=DEFAULT_QUERY_TEMPLATE,
        max_length=4_096,
        description="The query after the demonstrations: the bare field {query}; {{ and }} are "
        "literal braces. When unset it follows template: its text up to {output} with {input} "
        "as {query} ('Tweet: {input}\\nSentiment: {output}' gives 'Tweet: {query}\\nSentiment:'); "
        "this default when the template has no {input} before {output}, or other fields there.",
    )
    bias_constant: float = Field(
        default=1.0,
        gt=0,
        le=1_000_000,
        description="C in bias_bound = C * mmd and bound = C * mmd + R / sqrt(k): the "
        "Lipschitz constant of what the model distils from its prompt, in units of the task's "
        "loss per unit of MMD. 1 reads the bounds in units of MMD.",
    )
    complexity_constant: float = Field(
        default=1.0,
        ge=0,
        le=1_000_000,
        description="R in bound = C * mmd + R / sqrt(k): the weight of the finite-k term "
        "(auto-k trades it against mmd). 0 leaves the bias bound alone.",
    )
    separator: str = Field(default="\n\n", max_length=64)
    format: Literal["text", "messages"] = Field(
        default="text",
        description="text: the prompt only; messages: also the demonstrations as chat messages "
        "(messages: the optional system text, a user/assistant pair per demonstration, then the "
        "query as the last user message).",
    )
    system: str | None = Field(
        default=None,
        max_length=MAX_TEXT_CHARS,
        description="With format messages: the first message's text, role system.",
    )

    @field_validator("template")
    @classmethod
    def _example_template(cls, template: str) -> str:
        return _check_template(template, EXAMPLE_FIELDS)

    @field_validator("query_template")
    @classmethod
    def _query_template(cls, template: str) -> str:
        return _check_template(template, QUERY_FIELDS)

    @model_validator(mode="after")
    def _one_size(self) -> SelectionOptions:
        auto = self.k_min is not None or self.k_max is not None
        if auto and self.k is not None:
            raise ValueError("give k or k_min/k_max, not both")
        if auto and (self.k_min is None or self.k_max is None or self.k_min > self.k_max):
            raise ValueError("auto-k needs 1 <= k_min <= k_max")
        return self


class TargetIn(Model):
    """A target distribution: texts (optionally weighted) or every example of another pool."""

    texts: list[QueryText] | None = Field(default=None, min_length=1, max_length=MAX_TARGET_TEXTS)
    weights: list[Annotated[float, Field(ge=0)]] | None = None
    pool: PoolName | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TargetIn:
        if (self.texts is None) == (self.pool is None):
            raise ValueError("give exactly one of texts or pool")
        if self.weights is not None and (
            self.texts is None or len(self.weights) != len(self.texts)
        ):
            raise ValueError("weights need texts, one weight per text")
        return self


class TargetChoice(SelectionOptions):
    """Exactly one of ``query``, ``queries`` (one shared target set) or ``target``."""

    query: QueryText | None = None
    queries: list[QueryText] | None = Field(default=None, min_length=1, max_length=MAX_QUERIES)
    target: TargetIn | None = None

    @model_validator(mode="after")
    def _one_target(self) -> TargetChoice:
        given = [name for name in ("query", "queries", "target") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of query, queries or target")
        return self


PrefixName = Annotated[str, Field(pattern=POOL_NAME_PATTERN, examples=["shared"])]


class PrefixChoice(Model):
    """A stored prefix of the pool to put first in the prompt (``k``: the slice's size)."""

    prefix: PrefixName | None = Field(
        default=None,
        description="A prefix of this pool (POST /v1/pools/{pool}/prefixes): the prompt is its "
        "block (byte-identical on every call), then a slice of k examples chosen by the greedy "
        "conditioned on the prefix's examples, then the query.",
    )


class PoolSelectRequest(TargetChoice, PrefixChoice):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"query": "the brakes failed on the highway", "k": 4}]}
    )


class BatchSelectRequest(SelectionOptions, PrefixChoice):
    """Many independent single-query selections, computed as one batch."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"queries": ["first query", "second query"], "k": 4}]}
    )

    queries: list[QueryText] = Field(min_length=1, max_length=MAX_QUERIES)


class StatelessSelectRequest(TargetChoice):
    """A selection over inline candidates; no pool is stored."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "query": "is this car safe?",
                    "k": 1,
                    "candidates": [
                        {"input": "self-driving cars are safe", "output": "positive"},
                        {"input": "the sensor failed", "output": "negative"},
                    ],
                }
            ]
        }
    )

    candidates: list[ExampleIn] = Field(min_length=1, max_length=MAX_INLINE_CANDIDATES)

    @model_validator(mode="after")
    def _no_target_pool(self) -> StatelessSelectRequest:
        if self.target is not None and self.target.pool is not None:
            raise ValueError("a stateless selection takes target texts, not a pool")
        return self


class ChatMessage(Model):
    """One chat message, as OpenAI's chat API takes it."""

    role: Literal["system", "user", "assistant"] = Field(description="Who speaks.")
    content: str = Field(description="The text.")


class SelectedExample(Model):
    id: str = Field(description="The example's id.")
    input: str = Field(description="Its input.")
    output: str = Field(description="Its output.")
    label: str | None = Field(description="Its label, if any.")
    metadata: dict[str, MetadataValue] = Field(description="Its metadata.")
    selection_rank: int = Field(description="0 for the first example the greedy chose.")
    similarity: float = Field(
        description="Its input kernel value with the target, sum_j w_j k(x_i, y_j) under the "
        "selection's kernel and tau (one query: k(x_i, q); kernel units, higher is closer; "
        "the cosine itself under kernel cosine)."
    )
    affinity: float | None = Field(
        description="Its target affinity t_i, the term the selection weighs: the similarity "
        "times the target's estimated probability of its label under the joint kernel, the "
        "similarity otherwise (kernel units). Null when the service cannot redo the joint "
        "kernel's estimate (a prefiltered selection for a target of several points)."
    )
    contribution: float | None = Field(
        description="How much mmd2 would rise without it: MMD^2(chosen minus it) - mmd2 "
        "(kernel units; negative when the set is closer to the target without it). Null "
        "when affinity is."
    )


class Subset(Model):
    """A ranked subset: squared MMD to the target and the paper's bounds."""

    ids: list[str] = Field(description="The subset's example ids, in selection order.")
    mmd2: float = Field(description="Squared MMD to the target (kernel units, >= 0).")
    mmd: float = Field(description="MMD to the target: sqrt(mmd2); lower is closer.")
    bias_bound: float = Field(description="C * mmd (C: bias_constant).")
    bound: float = Field(description="C * mmd + R / sqrt(k) (R: complexity_constant).")


class Timings(Model):
    """Milliseconds: loading the pool (0 when it was ready), embedding the target,
    scanning/prefiltering the pool, greedy, refinement; the total includes the load."""

    load_ms: float = Field(
        description="Loading the pool into memory, when this request had to (ms); 0 when it was "
        "loaded."
    )
    embed_ms: float = Field(description="Embedding the query or target texts (ms).")
    scan_ms: float = Field(
        description="Scoring the pool against the target, or its prefilter (ms)."
    )
    select_ms: float = Field(description="The greedy (or baseline) choice (ms).")
    refine_ms: float = Field(description="Swap refinement (ms).")
    total_ms: float = Field(description="The whole request inside the service (ms).")


class BaselineScore(Model):
    """How close a baseline's subset of the same size comes to the target."""

    mmd: float = Field(description="Its MMD to the target: compare with the selection's mmd.")
    mmd2: float = Field(description="Its squared MMD: compare with the selection's mmd2.")


Baselines = TypeAliasType("Baselines", dict[str, BaselineScore])
LabelDistribution = TypeAliasType("LabelDistribution", dict[str, float])
BoundsByK = TypeAliasType("BoundsByK", dict[str, float])


class PrefixSlice(Model):
    """A selection with a prefix: the prompt's two parts. ``prompt`` is ``prefix_prompt``, the
    prefix's separator, then ``slice_prompt``; with format messages the first
    ``prefix_messages`` messages are the system text (if any) and the prefix's."""

    name: str = Field(description="The prefix.")
    prefix_hash: str = Field(
        description="sha256 (hex) of prefix_prompt: equal on every call until the prefix is "
        "rebuilt, so a client can check that the provider's prefix cache can hit."
    )
    prefix_ids: list[str] = Field(description="The prefix's example ids, in prompt order.")
    prefix_prompt: str = Field(description="The prefix's block, as stored (byte-identical).")
    slice_prompt: str = Field(
        description="The rest of the prompt: the slice's demonstrations (most relevant last by "
        "default) and the query."
    )
    prefix_tokens: int = Field(description="Tokens of prefix_prompt (the pool's tokenizer).")
    slice_tokens: int = Field(description="Tokens of slice_prompt (the pool's tokenizer).")
    prefix_messages: int | None = Field(
        default=None,
        description="format messages: how many of messages come before the slice's (the "
        "system text and the prefix's pairs).",
    )
    stale: bool = Field(
        description="A prefix example changed or was deleted since the prefix was built; "
        "its block is served unchanged, and the bounds count those still in the pool."
    )
    pinned: int = Field(
        description="Prefix examples the slice was conditioned on (those still in the pool)."
    )
    slice_mmd2: float = Field(description="Squared MMD of the slice alone to the target.")
    slice_mmd: float = Field(description="MMD of the slice alone: sqrt(slice_mmd2).")


class Selection(Model):
    """The chosen examples in prompt order, the rendered prompt, and how good the set is."""

    k: int = Field(description="Demonstrations chosen.")
    method: str = Field(description="How they were chosen (mmd, knn, mmr, random).")
    kernel: str = Field(description="The kernel that measured the MMD.")
    tau: float = Field(description="The kernel's bandwidth used.")
    tau_source: TauSource = Field(
        description="request: the request's tau; calibrated: the pool's calibrated tau (the "
        "request left tau unset, with the calibrated kernel and method mmd); default: the "
        "kernel's default."
    )
    joint: bool = Field(description="Matched the joint (input, label) distribution.")
    prefiltered: bool = Field(description="Chose among a prefilter's candidates (large pools).")
    examples: list[SelectedExample] = Field(description="The demonstrations, in prompt order.")
    prompt: str = Field(
        description="The demonstrations through template, joined by separator, then the "
        "query through query_template (query only)."
    )
    messages: list[ChatMessage] | None = Field(
        default=None,
        description="format messages only (else null): OpenAI-style chat messages. The system "
        "text, if given; per demonstration, in prompt order, a user message (the template up "
        "to {output}, rendered, trailing whitespace stripped) and an assistant message (the "
        "template from {output} on, rendered and stripped; the output alone when the template "
        "has no {output}); then the query through query_template as the last user message "
        "(query only).",
    )
    mmd2: float = Field(
        description="Squared MMD between the chosen set and the target (kernel units, >= 0)."
    )
    mmd: float = Field(description="MMD: sqrt(mmd2), lower is closer; what bias_bound scales.")
    bias_bound: float = Field(
        description="C * mmd (C: bias_constant): the bound on the bias of what the model "
        "distils from this prompt, in the units of C."
    )
    bound: float = Field(
        description="C * mmd + R / sqrt(k) (R: complexity_constant): bias plus the finite-k term."
    )
    subsets: list[Subset] = Field(
        description="The best num_subsets subsets, best first (the first is this selection)."
    )
    baselines: Baselines = Field(
        description="What knn and random reach at the same k (compare_baselines): mmd and mmd2.",
        examples=[{"knn": {"mmd": 0.9, "mmd2": 0.81}, "random": {"mmd": 1.05, "mmd2": 1.1}}],
    )
    target_label_distribution: LabelDistribution | None = Field(
        default=None, description="Labelled pools: the label distribution estimated for the target."
    )
    bounds_by_k: BoundsByK | None = Field(default=None, description="Auto-k: bound of each k.")
    timings: Timings = Field(description="Where the time went (ms).")
    prefix: PrefixSlice | None = Field(
        default=None,
        description="With a prefix only: the prompt's cacheable and per-query parts. Then "
        "examples are the slice's, k its size, and mmd2, mmd, bias_bound and bound those of "
        "the whole prompt (prefix and slice).",
    )


class PoolSelection(Selection):
    pool: str = Field(description="The pool selected from.")
    pool_version: int = Field(description="Its version when selected.")


class BatchSelection(Model):
    pool: str = Field(description="The pool selected from.")
    pool_version: int = Field(description="Its version when selected.")
    results: list[Selection] = Field(description="One selection per query, in request order.")


# --- prefixes ------------------------------------------------------------------------------

MAX_PREFIXES = 64
"""Prefixes one pool may hold."""

Traffic = TypeAliasType("Traffic", Literal["traffic"])


class PrefixCreate(SelectionOptions):
    """A prefix: k examples chosen by MMD to ``target`` (texts, another pool, or the pool's
    recorded traffic) with the selection options given, then stored in order with their
    texts and rendered through ``template`` and ``separator``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "shared", "k": 6, "target": {"texts": ["a typical query"]}}]
        }
    )

    name: PrefixName
    target: TargetIn | Traffic = Field(
        description="texts (weighted or not) or a pool, as a selection's target; or "
        '"traffic": the recent queries sampled from this pool\'s selections '
        "(MMDSHOT_TRAFFIC_SAMPLE)."
    )


class PrefixRebuild(Model):
    """What a rebuild changes; empty: the same target and options at the pool's current
    version."""

    target: TargetIn | Traffic | None = Field(
        default=None, description='A new target (texts, a pool, or "traffic"); null: the last one.'
    )


class PrefixExample(Model):
    """An example of a prefix, its texts as they were when the prefix was built."""

    id: str = Field(description="Its id.")
    input: str = Field(description="Its input.")
    output: str = Field(description="Its output.")
    label: str | None = Field(description="Its label, if any.")


class PrefixInfo(Stamped, PrefixBrief):
    """A stored prefix."""

    pool: str = Field(description="Its pool.")
    ids: list[str] = Field(description="Its example ids, in prompt order (fixed).")
    examples: list[PrefixExample] = Field(
        description="Its examples in prompt order, as built (what prefix_prompt renders)."
    )
    prefix_prompt: str = Field(description="Its block, rendered once with its template.")
    prefix_tokens: int = Field(description="Tokens of prefix_prompt (the pool's tokenizer).")
    pool_version: int = Field(description="The pool version it was built at.")
    source: Literal["texts", "pool", "traffic"] = Field(description="What its target was.")
    target_size: int = Field(description="Points of that target.")
    mmd2: float = Field(description="Squared MMD of the prefix to its target, when built.")
    mmd: float = Field(description="MMD of the prefix to its target, when built.")
    template: str = Field(description="Each demonstration's template.")
    separator: str = Field(description="Between demonstrations, and before the slice.")


class PrefixList(Model):
    prefixes: list[PrefixInfo] = Field(description="The pool's prefixes, by name.")


# --- meta ----------------------------------------------------------------------------------


class Health(Model):
    status: Literal["ok"] = Field(default="ok", description="Always ok: the process answers.")


class Readiness(Model):
    ready: bool = Field(description="Selections can be served.")
    model_loaded: bool = Field(description="The embedding model is loaded.")
    store_open: bool = Field(description="The store is open.")
    storage_full: bool = Field(
        default=False,
        description="The last write found no space (writes answer 507 storage_full; reads "
        "still work, so the replica stays ready).",
    )
    pools_loaded: bool = Field(
        description="The pools stored at start are loaded (/ready waits for it when "
        "MMDSHOT_READY_AFTER_LOAD is set)."
    )
    message: str | None = Field(default=None, description="Why not ready, when it is not.")


class Limits(Model):
    max_k: int = Field(default=MAX_K, description="Largest k.")
    max_query_chars: int = Field(default=MAX_QUERY_CHARS, description="Longest query.")
    max_text_chars: int = Field(default=MAX_TEXT_CHARS, description="Longest input or output.")
    max_queries: int = Field(default=MAX_QUERIES, description="Most queries in one request.")
    max_inline_candidates: int = Field(
        default=MAX_INLINE_CANDIDATES, description="Most candidates in POST /v1/select."
    )
    max_page: int = Field(default=MAX_PAGE, description="Largest page of examples.")
    max_upsert_batch: int = Field(description="Most examples in one upsert.")
    max_body_bytes: int = Field(description="Largest request body (bytes), imports aside.")
    max_import_bytes: int = Field(description="Largest import body (bytes).")
    max_prompt_chars: int = Field(description="Longest rendered prompt (characters).")
    max_response_chars: int = Field(
        description="Most characters of text (prompts and examples) in one selection response."
    )
    max_request_cost: int = Field(
        description="Cost budget of one selection (units of about one kernel evaluation): "
        "problems x pool x (target points + k x (num_subsets + 1)) + 100 per embedded "
        "character (2,048 at most per text); above it 422 too_costly."
    )
    request_timeout_s: float = Field(
        description="Deadline of a request's compute; past it 503 timeout with Retry-After."
    )
    compute_queue: int = Field(description="Selections that may wait; then 429.")
    write_queue: int = Field(description="Writes that may wait, in their own queue; then 429.")


class Info(Model):
    version: str = Field(description="The service's version.")
    model: str | None = Field(description="The embedding model; null until loaded.")
    dimension: int | None = Field(description="Its embedding dimension; null until loaded.")
    device: str = Field(description="Where the kernels run (cpu, cuda:0).")
    kernels: list[str] = Field(description="The kernels a selection may name.")
    methods: list[str] = Field(description="The methods a selection may name.")
    limits: Limits = Field(description="The hard limits of requests.")
    tokenizers: list[str] = Field(
        description="The tokenizers a pool may name at creation (default first; "
        "MMDSHOT_TOKENIZERS); empty until the models load."
    )
    auth: Literal["none", "api_key"] = Field(
        description="api_key: every /v1 route needs `Authorization: Bearer <key>`; "
        "none: the service is open (no MMDSHOT_API_KEYS)."
    )
