"""Search-space grammar, value types, and the hyperopt ask/tell driver (in process, no Hydra run)."""

import statistics

import pytest

from qframe.core.errors import ConfigError
from qframe.tuning.optimizer import Optimizer, resolve_backend
from qframe.tuning.space import combine, format_value, parse_space


def sample(space, n=60, algo="rand", seed=0):
    opt = Optimizer(space, resolve_backend(algo, None), seed)
    out = []
    for tid in range(n):
        values, _ = opt.ask(tid)
        opt.tell(tid, 0.0)
        out.append(values)
    return out


def test_grammar_gives_values_with_their_true_types():
    space = parse_space(
        {
            "a": "choice(relu, tanh, 3)",
            "b": "range(2, 6)",
            "c": "interval(0.1, 0.2)",
            "d": "tag(log, interval(0.001, 10))",
            "e": "int(interval(3, 5))",
            "f": "tag(log, int(interval(8, 256)))",
            "g": "7",
            "h": "1,2",
        }
    )
    assert [p.key for p in space.params] == ["a", "b", "c", "d", "e", "f", "h"]
    assert space.fixed == ["g=7"]
    draws = sample(space)
    for v in draws:
        assert v["a"] in ("relu", "tanh", 3)
        assert type(v["b"]) is int and 2 <= v["b"] <= 5  # range excludes its stop, like Hydra's
        assert type(v["c"]) is float and 0.1 <= v["c"] <= 0.2
        assert type(v["d"]) is float and 0.001 <= v["d"] <= 10
        assert type(v["e"]) is int and 3 <= v["e"] <= 5
        assert type(v["f"]) is int and 8 <= v["f"] <= 256
        assert v["h"] in (1, 2) and type(v["h"]) is int
    # values, not indices; both int-interval ends are reachable
    assert {v["a"] for v in draws} == {"relu", "tanh", 3}
    assert {v["e"] for v in draws} == {3, 4, 5}
    assert {v["b"] for v in draws} == {2, 3, 4, 5}
    # log-uniform: about half the draws below the geometric middle (0.1), far more than uniform would give
    assert sum(v["d"] < 0.1 for v in draws) > len(draws) / 4


def test_overrides_round_trip_through_hydra_grammar():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for value in [3, 0.1, 1e-7, "relu", "a b", "x,y", "it's", True, None, "null", "3"]:
        parsed = parser.parse_override(f"k={format_value(value)}").value()
        assert parsed == value, (value, format_value(value))


@pytest.mark.parametrize(
    ("entries", "needle"),
    [
        (["x=interval(0.1"], "malformed search space entry 'x=interval(0.1'"),
        (["x=interval(1, 1)"], "needs low < high"),
        (["x=tag(log, interval(0, 1))"], "positive lower bound"),
        (["x=tag(ordered, interval(1, 2))"], "unknown tag"),
    ],
)
def test_bad_grammar_is_one_clear_error(entries, needle):
    with pytest.raises(ConfigError) as info:
        parse_space(entries)
    assert needle in str(info.value)


def test_empty_space_and_unknown_backend_are_refused():
    with pytest.raises(ConfigError, match="search space is empty"):
        combine([], {"model.alpha": 0.5}, ["dataset.n_days=300"])
    with pytest.raises(ConfigError) as info:
        resolve_backend("cmaes", None)
    assert "tpe" in str(info.value) and "rand" in str(info.value) and "anneal" in str(info.value)


def test_named_space_params_and_arguments_combine_later_wins():
    space = combine([{"a": "choice(1,2)", "b": "interval(0,1)"}], {"b": "interval(2,3)"}, ["c=range(0,3)", "d=1"])
    assert space.describe() == {"a": "choice(1,2)", "b": "interval(2,3)", "c": "range(0,3)"}
    assert space.fixed == ["d=1"]


def toy(v):
    return (v["x"] - 0.3) ** 2 + (v["y"] + 0.2) ** 2


def run(algo, n=40, seed=0):
    space = parse_space({"x": "interval(-2, 2)", "y": "interval(-2, 2)"})
    opt = Optimizer(space, resolve_backend(algo, 8), seed)
    losses = []
    for tid in range(n):
        values, _ = opt.ask(tid)
        loss = toy(values)
        opt.tell(tid, loss)
        losses.append(loss)
    return losses


def test_tpe_beats_the_median_of_random_search():
    tpe, rand = run("tpe"), run("rand")
    assert tpe == run("tpe")  # deterministic with a seed
    # after its 8 start-up trials TPE concentrates where the loss is low
    assert statistics.median(tpe[8:]) < statistics.median(rand[8:])
    assert min(tpe) <= statistics.median(rand)


def test_failed_trials_never_reach_the_algorithm():
    space = parse_space({"x": "interval(0, 1)"})
    opt = Optimizer(space, resolve_backend("tpe", 2), 0)
    for tid in range(6):
        opt.ask(tid)
        opt.tell(tid, None if tid % 2 else float(tid))
    losses = opt.trials.losses()
    assert len(losses) == 3 and all(loss is not None for loss in losses)


def test_pending_trials_are_known_when_asking_again():
    space = parse_space({"x": "interval(0, 1)"})
    opt = Optimizer(space, resolve_backend("tpe", 2), 0)
    for tid in range(4):
        opt.ask(tid)  # none told yet: all four running
    assert len(opt.trials.trials) == 4
    assert [t["result"]["status"] for t in opt.trials.trials] == ["running"] * 4
