"""Request and response models. Hard limits live here so oversized input is refused by
validation (422) before any compute; the body-size limit (413) lives in the settings."""

from __future__ import annotations

import string
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from typing_extensions import TypeAliasType

from selector.kernels import KERNEL_NAMES
from selector.search import METHODS

MAX_K = 256
MAX_QUERY_CHARS = 8_192
MAX_TEXT_CHARS = 32_768
MAX_QUERIES = 256
MAX_TARGET_TEXTS = 1_024
MAX_INLINE_CANDIDATES = 5_000
MAX_UPSERT_CEILING = 10_000
MAX_PAGE = 1_000
MAX_SUBSETS = 16
MAX_TAUS = 16
MAX_VALIDATION_SIZE = 10_000
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


class ErrorInfo(Model):
    type: str = Field(examples=["not_found"])
    message: str = Field(examples=["pool 'tweets' does not exist"])
    detail: Any = None


class ErrorBody(Model):
    """The body of every error response."""

    error: ErrorInfo


# --- pools and examples -------------------------------------------------------------------


class TauScore(Model):
    tau: float = Field(examples=[0.1])
    score: float = Field(examples=[0.71])


class Calibration(Model):
    """A pool's calibrated softmax bandwidth, chosen on a validation split carved from the pool:
    ``validation_size`` examples (drawn with ``seed``) held out, k demonstrations chosen for
    each from the rest under every candidate tau and by knn, each setting scored, the best tau
    kept (ties: the larger)."""

    tau: float = Field(description="The chosen bandwidth.", examples=[0.1])
    kernel: Kernel
    scores: list[TauScore] = Field(description="The score of every candidate tau, ascending tau.")
    knn_score: float = Field(description="knn's score on the same held-out examples.")
    beats_knn: bool = Field(description="Whether the chosen tau scores higher than knn.")
    scorer: CalibrationScorer = Field(
        description="label_purity: the share of demonstrations whose label equals the held-out "
        "example's (labelled pools); output_similarity: the mean cosine similarity of their "
        "outputs' embeddings to the held-out example's output (unlabelled pools)."
    )
    k: int
    validation_size: int
    seed: int
    pool_version: int = Field(description="The pool version it was computed at.")
    calibrated_at: float


class PoolCalibration(Calibration):
    stale: bool = Field(
        description="The pool changed since (its version is past pool_version). Selections "
        "still use the calibrated tau; calibrate again to refresh it."
    )


class CalibrateRequest(Model):
    """What to calibrate: the candidate bandwidths, the k to select, the validation split."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"k": 8, "taus": [0.05, 0.1, 0.2]}]})

    k: int = Field(default=8, ge=1, le=MAX_K, description="Demonstrations per held-out example.")
    taus: list[Annotated[float, Field(gt=0, le=1_000)]] = Field(
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


class PoolInfo(Model):
    """A pool: its size, version (bumped by every change) and the model that embedded it."""

    name: str = Field(examples=["tweets"])
    description: str
    version: int = Field(examples=[3])
    size: int = Field(examples=[1200])
    labelled: bool = Field(
        description="Every example has a label: selection uses the joint kernel."
    )
    model: str = Field(examples=["all-MiniLM-L6-v2"])
    dimension: int = Field(examples=[384])
    created_at: float
    updated_at: float
    calibration: PoolCalibration | None = Field(
        default=None, description="The last calibration (POST /v1/pools/{pool}/calibrate)."
    )


class PoolList(Model):
    pools: list[PoolInfo]


class ExampleIn(Model):
    """One demonstration. Without an ``id`` one is derived from its content."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"input": "the car drove itself", "output": "positive", "label": "positive"}
            ]
        }
    )

    id: ExampleId | None = None
    input: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    output: str = Field(default="", max_length=MAX_TEXT_CHARS)
    label: str | None = Field(default=None, min_length=1, max_length=256)
    metadata: Metadata = Field(default_factory=dict)


class Example(ExampleIn):
    """A stored demonstration."""

    id: str
    token_count: int = Field(description="Tokens of input and output (bundled tokenizer).")


class ExamplesUpsert(Model):
    examples: list[ExampleIn] = Field(min_length=1, max_length=MAX_UPSERT_CEILING)


class Duplicate(Model):
    """An example of the request not stored because the pool holds the same content."""

    position: int = Field(description="Index of the example in the request (or line number).")
    existing_id: str


class UpsertResult(Model):
    pool: str
    version: int
    inserted: list[str]
    updated: list[str]
    duplicates: list[Duplicate]


class ExamplePage(Model):
    examples: list[Example]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end."
    )


# --- imports ---------------------------------------------------------------------------------


class LineError(Model):
    line: int = Field(description="1-based line (JSONL) or element (JSON array) number.")
    message: str


class Job(Model):
    """A background job. An import: ``done`` of ``total`` records are committed or rejected.
    A calibration: ``done`` of ``total`` settings (each tau, and knn) are scored, and
    ``calibration`` holds the result once it succeeded."""

    id: str
    kind: Literal["import", "calibration"]
    pool: str
    status: Literal["queued", "running", "succeeded", "failed"]
    total: int
    done: int
    inserted: int
    updated: int
    duplicates: int
    errors: list[LineError]
    message: str | None = None
    calibration: Calibration | None = None
    created_at: float
    updated_at: float


# --- selection ---------------------------------------------------------------------------------


def _check_template(template: str, fields: frozenset[str]) -> str:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"malformed template: {exc}") from exc
    for _, name, _, _ in parsed:
        if name is not None and name not in fields:
            raise ValueError(f"template field {{{name}}} is not one of {sorted(fields)}")
    try:  # format specs and conversions fail only when applied
        template.format(**dict.fromkeys(fields, ""))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"malformed template: {exc}") from exc
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
    tau: float | Literal["median"] | None = Field(
        None,
        description="Bandwidth (>0); null: the pool's calibrated tau when it has one (for its "
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
    template: str = Field(default=DEFAULT_TEMPLATE, max_length=4_096)
    query_template: str = Field(default=DEFAULT_QUERY_TEMPLATE, max_length=4_096)
    separator: str = Field(default="\n\n", max_length=64)

    @field_validator("tau")
    @classmethod
    def _positive_tau(cls, tau: float | str | None) -> float | str | None:
        if isinstance(tau, float | int) and not 0 < tau <= 1_000:
            raise ValueError("tau must lie in (0, 1000]")
        return tau

    @field_validator("template")
    @classmethod
    def _example_template(cls, template: str) -> str:
        return _check_template(template, EXAMPLE_FIELDS)

    @field_validator("query_template")
    @classmethod
    def _query_template(cls, template: str) -> str:
        return _check_template(template, frozenset({"query"}))

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


class PoolSelectRequest(TargetChoice):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"query": "the brakes failed on the highway", "k": 4}]}
    )


class BatchSelectRequest(SelectionOptions):
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


class SelectedExample(Model):
    id: str
    input: str
    output: str
    label: str | None
    metadata: dict[str, MetadataValue]
    selection_rank: int = Field(description="0 for the first example the greedy chose.")


class Subset(Model):
    """A ranked subset: squared MMD to the target and the paper's bounds."""

    ids: list[str]
    mmd2: float
    mmd: float
    bias_bound: float = Field(description="C * mmd.")
    bound: float = Field(description="C * mmd + R / sqrt(k).")


class Timings(Model):
    """Milliseconds: loading the pool (0 when it was ready), embedding the target,
    scanning/prefiltering the pool, greedy, refinement; the total includes the load."""

    load_ms: float
    embed_ms: float
    scan_ms: float
    select_ms: float
    refine_ms: float
    total_ms: float


Baselines = TypeAliasType("Baselines", dict[str, float])
LabelDistribution = TypeAliasType("LabelDistribution", dict[str, float])
BoundsByK = TypeAliasType("BoundsByK", dict[str, float])


class Selection(Model):
    """The chosen examples in prompt order, the rendered prompt, and how good the set is."""

    k: int
    method: str
    kernel: str
    tau: float
    tau_source: TauSource = Field(
        description="request: the request's tau; calibrated: the pool's calibrated tau (the "
        "request left tau unset, with the calibrated kernel and method mmd); default: the "
        "kernel's default."
    )
    joint: bool
    prefiltered: bool
    examples: list[SelectedExample]
    prompt: str
    mmd2: float
    mmd: float
    bias_bound: float
    bound: float
    subsets: list[Subset]
    baselines: Baselines = Field(
        description="mmd2 of knn and random at the same k.", examples=[{"knn": 0.8, "random": 1.1}]
    )
    target_label_distribution: LabelDistribution | None = None
    bounds_by_k: BoundsByK | None = Field(default=None, description="Auto-k: bound of each k.")
    timings: Timings


class PoolSelection(Selection):
    pool: str
    pool_version: int


class BatchSelection(Model):
    pool: str
    pool_version: int
    results: list[Selection]


# --- meta ----------------------------------------------------------------------------------


class Health(Model):
    status: Literal["ok"] = "ok"


class Readiness(Model):
    ready: bool
    model_loaded: bool
    store_open: bool
    pools_loaded: bool = Field(
        description="The pools stored at start are loaded (/ready waits for it when "
        "MMDSHOT_READY_AFTER_LOAD is set)."
    )
    message: str | None = None


class Limits(Model):
    max_k: int = MAX_K
    max_query_chars: int = MAX_QUERY_CHARS
    max_text_chars: int = MAX_TEXT_CHARS
    max_queries: int = MAX_QUERIES
    max_inline_candidates: int = MAX_INLINE_CANDIDATES
    max_page: int = MAX_PAGE
    max_upsert_batch: int
    max_body_bytes: int
    max_import_bytes: int
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
    version: str
    model: str | None
    dimension: int | None
    device: str
    kernels: list[str]
    methods: list[str]
    limits: Limits
