from typing import Literal

CalibrationScorer = Literal["label_purity", "output_similarity"]

CALIBRATION_SCORER_VALUES: set[CalibrationScorer] = {
    "label_purity",
    "output_similarity",
}


def check_calibration_scorer(value: str) -> CalibrationScorer:
    if value in CALIBRATION_SCORER_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {CALIBRATION_SCORER_VALUES!r}")
