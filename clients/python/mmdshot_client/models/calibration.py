from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..models.calibration_scorer import CalibrationScorer, check_calibration_scorer
from ..models.kernel import Kernel, check_kernel

if TYPE_CHECKING:
    from ..models.tau_score import TauScore


T = TypeVar("T", bound="Calibration")


@_attrs_define
class Calibration:
    """A pool's calibrated softmax bandwidth, chosen on a validation split carved from the pool:
    ``validation_size`` examples (drawn with ``seed``) held out, k demonstrations chosen for
    each from the rest under every candidate tau and by knn, each setting scored, the best tau
    kept (ties: the larger).

        Attributes:
            beats_knn (bool): Whether the chosen tau scores higher than knn.
            calibrated_at (float): When it finished, in seconds since the epoch.
            calibrated_at_iso (str): calibrated_at as an ISO-8601 UTC timestamp.
            k (int): Demonstrations chosen per held-out example.
            kernel (Kernel):
            knn_score (float): knn's score on the same held-out examples.
            pool_version (int): The pool version it was computed at.
            scorer (CalibrationScorer):
            scores (list[TauScore]): The score of every candidate tau, ascending tau.
            seed (int): The seed that drew the validation split.
            tau (float): The chosen bandwidth.
            validation_size (int): Examples held out as queries.
    """

    beats_knn: bool
    calibrated_at: float
    calibrated_at_iso: str
    k: int
    kernel: Kernel
    knn_score: float
    pool_version: int
    scorer: CalibrationScorer
    scores: list[TauScore]
    seed: int
    tau: float
    validation_size: int

    def to_dict(self) -> dict[str, Any]:
        beats_knn = self.beats_knn

        calibrated_at = self.calibrated_at

        calibrated_at_iso = self.calibrated_at_iso

        k = self.k

        kernel: str = self.kernel

        knn_score = self.knn_score

        pool_version = self.pool_version

        scorer: str = self.scorer

        scores = []
        for scores_item_data in self.scores:
            scores_item = scores_item_data.to_dict()
            scores.append(scores_item)

        seed = self.seed

        tau = self.tau

        validation_size = self.validation_size

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "beats_knn": beats_knn,
                "calibrated_at": calibrated_at,
                "calibrated_at_iso": calibrated_at_iso,
                "k": k,
                "kernel": kernel,
                "knn_score": knn_score,
                "pool_version": pool_version,
                "scorer": scorer,
                "scores": scores,
                "seed": seed,
                "tau": tau,
                "validation_size": validation_size,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.tau_score import TauScore  # noqa: PLC0415

        d = dict(src_dict)
        beats_knn = d.pop("beats_knn")

        calibrated_at = d.pop("calibrated_at")

        calibrated_at_iso = d.pop("calibrated_at_iso")

        k = d.pop("k")

        kernel = check_kernel(d.pop("kernel"))

        knn_score = d.pop("knn_score")

        pool_version = d.pop("pool_version")

        scorer = check_calibration_scorer(d.pop("scorer"))

        scores = []
        _scores = d.pop("scores")
        for scores_item_data in _scores:
            scores_item = TauScore.from_dict(scores_item_data)

            scores.append(scores_item)

        seed = d.pop("seed")

        tau = d.pop("tau")

        validation_size = d.pop("validation_size")

        calibration = cls(
            beats_knn=beats_knn,
            calibrated_at=calibrated_at,
            calibrated_at_iso=calibrated_at_iso,
            k=k,
            kernel=kernel,
            knn_score=knn_score,
            pool_version=pool_version,
            scorer=scorer,
            scores=scores,
            seed=seed,
            tau=tau,
            validation_size=validation_size,
        )

        return calibration
