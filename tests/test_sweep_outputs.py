"""The sweep's history plot: trials on an integer axis, both axes labelled."""

import matplotlib.pyplot as plt
import pytest

from qframe.tuning.outputs import history_figure, plot_history
from qframe.tuning.state import SweepState, Trial


def sweep_state(values):
    trials = [
        Trial(number=i, job=i, status="failed" if v is None else "complete", params={"x": i}, vals={}, value=v)
        for i, v in enumerate(values)
    ]
    return SweepState("sig", {"x": "interval(0,1)"}, [], {"algo": "tpe"}, trials)


@pytest.mark.parametrize("values", [[0.3, 0.1], [0.5, None, 0.2], [float(i % 7) for i in range(40)]])
def test_history_ticks_are_whole_trials_and_axes_are_named(tmp_path, values):
    state = sweep_state(values)
    fig = history_figure(state, "minimize", "excess_return_with_cost.information_ratio")
    (ax,) = fig.axes
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert ax.get_xlabel() == "trial" and ax.get_ylabel() == "excess_return_with_cost.information_ratio"
    plt.close(fig)
    plot_history(state, "minimize", None, tmp_path / "history.png")
    assert (tmp_path / "history.png").stat().st_size > 1000
