"""optkit: the optimization methods of modern machine learning, correct, fast, easy to compare.

Training optimizers (``torch.optim.Optimizer`` subclasses): :class:`SGD`, :class:`RMSprop`,
:class:`Adam`, :class:`AdamW`, :class:`Muon`, :class:`MuonClip`. Minimization:
:func:`minimize`, :func:`minimize_module`, :mod:`problems`. Smoothing: :func:`ewma`,
:func:`sma`, :class:`EWMA`. Advice: :func:`advise`.
"""

from . import problems
from .advisor import Advice, advise
from .minimization import OptimizeResult, minimize, minimize_module
from .optim import SGD, Adam, AdamW, Muon, MuonClip, RMSprop
from .smoothing import EWMA, ewma, sma

__version__ = "0.1.0"

__all__ = [
    "EWMA",
    "SGD",
    "Adam",
    "AdamW",
    "Advice",
    "Muon",
    "MuonClip",
    "OptimizeResult",
    "RMSprop",
    "advise",
    "ewma",
    "minimize",
    "minimize_module",
    "problems",
    "sma",
]
