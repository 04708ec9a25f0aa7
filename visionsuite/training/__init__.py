"""The training engine shared by every task (see :mod:`visionsuite.training.trainer`)."""

from visionsuite.training.trainer import TrainResult, evaluate_model, train

__all__ = ["TrainResult", "evaluate_model", "train"]
