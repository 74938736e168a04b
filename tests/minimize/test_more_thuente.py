"""MoreThuente.accepts_first: the search's own verdict on its first trial, without start()."""

from hypothesis import given, settings
from hypothesis import strategies as st

from optkit.minimization.more_thuente import MoreThuente

num = st.floats(-10.0, 10.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    f0=num,
    g0=st.floats(-10.0, -1e-3),
    stp=st.floats(1e-3, 5.0),
    at_max=st.booleans(),
    f=num,
    g=num,
)
def test_accepts_first_is_what_step_returns_at_the_first_trial(f0, g0, stp, at_max, f, g):
    stpmax = stp if at_max else stp * 10.0
    search = MoreThuente()
    search.start(f0, g0, stp, 0.0, stpmax)
    assert search.accepts_first(f0, g0, stp, stpmax, f, g) == (search.step(f, g) != "fg")
