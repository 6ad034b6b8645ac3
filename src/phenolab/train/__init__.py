"""Training: the plain loop, objectives (`phenolab.objectives`), explicit random streams, and the Recorder."""

from phenolab.objectives import Batch, Objective, cross_entropy, make_objective, mse
from phenolab.train.loop import TrainResult, make_optimizer, train
from phenolab.train.recorder import Recorder
from phenolab.train.seeding import derive_seed, generator

__all__ = ["Batch", "Objective", "Recorder", "TrainResult", "cross_entropy", "derive_seed", "generator",
           "make_objective", "make_optimizer", "mse", "train"]
