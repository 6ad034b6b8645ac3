"""Training: the plain loop, losses, explicit random streams, and the Recorder."""

from phenolab.train.loop import TrainResult, make_optimizer, train
from phenolab.train.losses import cross_entropy, get_loss, mse
from phenolab.train.recorder import Recorder
from phenolab.train.seeding import derive_seed, generator

__all__ = ["Recorder", "TrainResult", "cross_entropy", "derive_seed", "generator", "get_loss",
           "make_optimizer", "mse", "train"]
