"""Training optimizers: ``torch.optim.Optimizer`` subclasses."""

from .adam import Adam, AdamW
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["SGD", "Adam", "AdamW", "RMSprop"]
