"""optkit: the optimization methods of modern machine learning, correct, fast, easy to compare.

Training optimizers (``torch.optim.Optimizer`` subclasses): :class:`SGD`, :class:`RMSprop`,
:class:`Adam`, :class:`AdamW`. Smoothing: :func:`ewma`, :func:`sma`, :class:`EWMA`.
"""

from . import problems
from .advise import Advice, advise
from .ewma import EWMA, ewma, sma
from .minimize import OptimizeResult, minimize, minimize_module
from .optim import SGD, Adam, AdamW, RMSprop

__version__ = "0.1.0"

__all__ = [
    "EWMA",
    "SGD",
    "Adam",
    "AdamW",
    "Advice",
    "OptimizeResult",
    "RMSprop",
    "advise",
    "ewma",
    "minimize",
    "minimize_module",
    "problems",
    "sma",
]
