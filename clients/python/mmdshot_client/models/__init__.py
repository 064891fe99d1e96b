"""Contains all the data models used in inputs/outputs"""

from .baseline_score import BaselineScore
from .baselines import Baselines
from .batch_select_request import BatchSelectRequest
from .batch_select_request_format import BatchSelectRequestFormat
from .batch_selection import BatchSelection
from .bounds_by_k import BoundsByK
from .calibrate_request import CalibrateRequest
from .calibration import Calibration
from .calibration_scorer import CalibrationScorer
from .chat_message import ChatMessage
from .chat_message_role import ChatMessageRole
from .constraints_in import ConstraintsIn
from .duplicate import Duplicate
from .error_body import ErrorBody
from .error_info import ErrorInfo
from .example import Example
from .example_in import ExampleIn
from .example_page import ExamplePage
from .examples_upsert import ExamplesUpsert
from .health import Health
from .info import Info
from .info_auth import InfoAuth
from .job import Job
from .job_kind import JobKind
from .job_status import JobStatus
from .kernel import Kernel
from .label_distribution import LabelDistribution
from .label_quotas import LabelQuotas
from .limits import Limits
from .line_error import LineError
from .metadata import Metadata
from .method import Method
from .pool_calibration import PoolCalibration
from .pool_create import PoolCreate
from .pool_info import PoolInfo
from .pool_list import PoolList
from .pool_select_request import PoolSelectRequest
from .pool_select_request_format import PoolSelectRequestFormat
from .pool_selection import PoolSelection
from .prefix_brief import PrefixBrief
from .prefix_create import PrefixCreate
from .prefix_create_format import PrefixCreateFormat
from .prefix_example import PrefixExample
from .prefix_info import PrefixInfo
from .prefix_info_source import PrefixInfoSource
from .prefix_list import PrefixList
from .prefix_rebuild import PrefixRebuild
from .prefix_slice import PrefixSlice
from .prompt_order import PromptOrder
from .quota import Quota
from .readiness import Readiness
from .selected_example import SelectedExample
from .selected_example_metadata import SelectedExampleMetadata
from .selection import Selection
from .stateless_select_request import StatelessSelectRequest
from .stateless_select_request_format import StatelessSelectRequestFormat
from .subset import Subset
from .target_in import TargetIn
from .tau_score import TauScore
from .tau_source import TauSource
from .timings import Timings
from .upsert_result import UpsertResult

__all__ = (
    "Baselines",
    "BaselineScore",
    "BatchSelection",
    "BatchSelectRequest",
    "BatchSelectRequestFormat",
    "BoundsByK",
    "CalibrateRequest",
    "Calibration",
    "CalibrationScorer",
    "ChatMessage",
    "ChatMessageRole",
    "ConstraintsIn",
    "Duplicate",
    "ErrorBody",
    "ErrorInfo",
    "Example",
    "ExampleIn",
    "ExamplePage",
    "ExamplesUpsert",
    "Health",
    "Info",
    "InfoAuth",
    "Job",
    "JobKind",
    "JobStatus",
    "Kernel",
    "LabelDistribution",
    "LabelQuotas",
    "Limits",
    "LineError",
    "Metadata",
    "Method",
    "PoolCalibration",
    "PoolCreate",
    "PoolInfo",
    "PoolList",
    "PoolSelection",
    "PoolSelectRequest",
    "PoolSelectRequestFormat",
    "PrefixBrief",
    "PrefixCreate",
    "PrefixCreateFormat",
    "PrefixExample",
    "PrefixInfo",
    "PrefixInfoSource",
    "PrefixList",
    "PrefixRebuild",
    "PrefixSlice",
    "PromptOrder",
    "Quota",
    "Readiness",
    "SelectedExample",
    "SelectedExampleMetadata",
    "Selection",
    "StatelessSelectRequest",
    "StatelessSelectRequestFormat",
    "Subset",
    "TargetIn",
    "TauScore",
    "TauSource",
    "Timings",
    "UpsertResult",
)
