"""Training: data assembly, honest splits, bounded search, threshold at the precision floor."""

from fatigue_guard.training.data import TooManyInvalidRows, load_training_data
from fatigue_guard.training.train import TrainResult, train_model

__all__ = [
    "TooManyInvalidRows",
    "TrainResult",
    "load_training_data",
    "train_model",
]
