"""Training optimizers: ``torch.optim.Optimizer`` subclasses."""

from .adam import Adam, AdamW
from .muon import Muon, MuonClip
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "Muon", "MuonClip", "RMSprop"]
