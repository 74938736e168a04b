"""Fixtures shared by the tests: ``device`` runs a test on every available device."""

from __future__ import annotations

import pytest
import torch

from .devices import DEVICES


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """``cpu`` always; ``cuda`` when ``torch.cuda.is_available()``, else skipped with a reason."""
    return torch.device(request.param)
