"""Training: data assembly, honest splits, bounded search, threshold at the precision floor."""

from fatigue_guard.training.data import TooManyInvalidRows, load_training_data
from fatigue_guard.training.model import MISSING_SENTINEL, build_pipeline
from fatigue_guard.training.threshold import (
    NoThresholdMeetsFloor,
    ThresholdChoice,
    select_threshold,
)
from fatigue_guard.training.train import TrainResult, train_model

__all__ = [
    "MISSING_SENTINEL",
    "NoThresholdMeetsFloor",
    "ThresholdChoice",
    "TooManyInvalidRows",
    "TrainResult",
    "build_pipeline",
    "load_training_data",
    "select_threshold",
    "train_model",
]
