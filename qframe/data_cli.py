"""``qframe data check dataset=... [dataset.KEY=VALUE ...]``: load a dataset and print its data report, no model.

The dataset section is composed as a run composes it (same config groups, same overrides), so what this prints
is what a run with those overrides records as ``data_report.json``; bad input gets the run's one-line errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qframe data",
        description="Load a dataset as a run would and print what loading found (dates, calendar gaps, suspended "
        "days, likely splits, outliers, benchmark), without computing features or fitting a model.",
    )
    parser.add_argument("action", choices=("check",))
    parser.add_argument("overrides", nargs="*", help="dataset=csv dataset.path=... (any run override)")
    parser.add_argument("--json", action="store_true", help="the whole report as JSON")
    return parser


def _compose(overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_dir

    from qframe.app import _resolve, conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return _resolve(cfg)


def check(overrides: list[str], as_json: bool = False) -> int:
    """Compose, load, print the report; one ``qframe: error:`` line and status 2 for bad input."""
    from qframe.cli import _error, check_group_overrides, check_override_syntax, config_groups, quote_home_paths
    from qframe.core.components import build_component
    from qframe.core.data_report import data_report, report_lines
    from qframe.core.errors import QFrameError
    from qframe.core.registry import get_registry

    overrides = quote_home_paths(overrides)
    try:
        problem = check_override_syntax(overrides) or check_group_overrides(overrides, config_groups())
        if problem:
            return _error(problem)
        try:
            cfg = _compose(overrides)
        except QFrameError:
            raise
        except Exception as exc:  # Hydra's composition errors: its own one-line message
            from qframe.hydra_errors import describe_hydra_error

            message = describe_hydra_error(exc, overrides)
            if message is None:
                raise
            return _error(message)
        name, dataset = build_component(get_registry(), "dataset", cfg.get("dataset"), "dataset")
        market = dataset.load(cache_dir=Path(cfg["workdir"]) / "cache")
    except QFrameError as exc:
        return _error(str(exc))
    report = data_report(market)
    if as_json:
        print(json.dumps(report, indent=1, default=str))
        return 0
    print(f"dataset {name!r}: {report['source'] or market.name}")
    for line in report_lines(report):
        print(line)
    for note in report["notes"]:
        print(f"note: {note}")
    print("the whole report: qframe data check ... --json (a run records it as data_report.json)")
    return 0


def main(argv: list[str]) -> int:
    """Run ``qframe data``; returns the exit status."""
    args = _parser().parse_args(argv)
    return check(args.overrides, args.json)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
