"""Training optimizers: ``torch.optim.Optimizer`` subclasses."""

from .adam import Adam, AdamW

__all__ = ["Adam", "AdamW"]
