"""Peak RSS of one workflow run, stage by stage (Linux: the kernel's high-water mark, reset at each stage).

Each stage's peak is the process's largest resident set while the stage ran (``VmHWM`` after writing ``5`` to
``/proc/self/clear_refs`` at its start); the fit is split into LightGBM's binning (building the train and valid
Datasets) and its boosting. Runs cold then warm, each in its own process, in one fresh work directory; with
``--compare`` (in a work directory whose caches a first run filled: ``--workdir``), warm runs alternating without
(before) and with (after, the default) the heap trim once LightGBM has placed its bins. A warm run that loads the
bins the cold run stored samples nothing: its ``fit: loading stored bins`` row stands for the binning. Each run also
prints its fit's parts (``fit binning``: binning, or loading the stored bins).

    .venv/bin/python benchmarks/bench_memory.py model.bin_construct_sample_cnt=200000 model.num_threads=2
    .venv/bin/python benchmarks/bench_memory.py dataset=qlib dataset.provider_uri=DIR dataset.market=csi300 ...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OBJECTIVE = "excess_return_with_cost.information_ratio"


def _status(key: str) -> float:
    """A ``/proc/self/status`` memory line (kB) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def child(overrides: list[str], workdir: str, plain: bool = False) -> None:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from qframe.app import conf_dir
    from qframe.core.progress import Progress
    from qframe.core.workflow import run_workflow
    from qframe.plugins.models import lightgbm_bins

    peaks: dict[str, float] = {}
    extra: dict[str, float] = {}

    class Peaks(Progress):
        def start(self, name: str, detail: str = "") -> None:
            self.stage = name
            _reset_peak()
            super().start(name, detail)

        def finish(self, detail: str | None = None, tag: str = ""):
            peaks[self.stage] = max(peaks.get(self.stage, 0.0), _status("VmHWM"))
            peaks[f"{self.stage} (RSS at its end)"] = _status("VmRSS")
            return super().finish(detail, tag)

    build = lightgbm_bins.build

    def timed_build(*args, **kwargs):  # the fit's binning apart from its boosting
        peaks["fit: before binning (RSS)"] = _status("VmRSS")
        _reset_peak()
        out = build(*args, **kwargs)
        peaks["fit: binning"] = _status("VmHWM")
        peaks["fit: after binning (RSS)"] = _status("VmRSS")
        return out

    cached = lightgbm_bins.cached

    def timed_cached(*args, **kwargs):  # a run that loads stored bins samples nothing: its loading's peak
        rss = _status("VmRSS")
        _reset_peak()
        out = cached(*args, **kwargs)
        if out.how == "reused":
            peaks["fit: before binning (RSS)"] = rss
            peaks["fit: loading stored bins"] = _status("VmHWM")
            peaks["fit: after binning (RSS)"] = _status("VmRSS")
        return out

    store = lightgbm_bins._store

    def timed_store(*args, **kwargs):  # what storing the bins for the next runs costs the run that binned
        t0 = time.perf_counter()
        store(*args, **kwargs)
        extra["storing the bins (s)"] = time.perf_counter() - t0

    lightgbm_bins.build = timed_build
    lightgbm_bins._store = timed_store
    lightgbm_bins.cached = timed_cached
    if plain:  # as before: glibc keeps the freed sampling buffers resident
        lightgbm_bins.trim_heap = lambda: None
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"workdir={workdir}", *overrides], return_hydra_config=False)
    container = OmegaConf.to_container(cfg, resolve=True)
    peaks["imports + compose (RSS)"] = _status("VmRSS")
    import resource

    result = run_workflow(container, progress=Peaks())
    # clear_refs resets ru_maxrss with VmHWM: the process's peak is the largest stage peak
    stage_peaks = [v for k, v in peaks.items() if "RSS" not in k]
    process_peak = max([*stage_peaks, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024])
    timings = {k: v for k, v in result.timings.items() if k.startswith("fit")} | extra
    out = {"peaks": peaks, "process_peak": process_peak, "metrics": result.metrics, "timings": timings}
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--compare", action="store_true", help="warm runs without and with the heap trim, alternating")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    if args.child:
        child(args.overrides, args.child, args.plain)
        return
    workdir = args.workdir or tempfile.mkdtemp(prefix="qframe-bench-memory-")
    results = {}
    labels = ["warm untrimmed", "warm", "warm untrimmed 2", "warm 2"] if args.compare else ["cold", "warm"]
    for label in labels:
        plain = ["--plain"] if "untrimmed" in label else []
        proc = subprocess.run(
            [sys.executable, __file__, "--child", workdir, *plain, *args.overrides],
            capture_output=True,
            text=True,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        )
        if proc.returncode != 0:
            sys.exit(f"{label} run failed:\n{proc.stderr[-4000:]}")
        results[label] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(label, json.dumps(results[label]), flush=True)  # kept if a later run is cut short
    stages = list(dict.fromkeys(k for r in results.values() for k in r["peaks"]))
    print(f"{'stage (peak MB)':<32} " + " ".join(f"{label:>12}" for label in results))
    for stage in stages:
        print(f"{stage:<32} " + " ".join(f"{r['peaks'].get(stage, float('nan')):>12.0f}" for r in results.values()))
    print(f"{'process peak RSS':<32} " + " ".join(f"{r['process_peak']:>12.0f}" for r in results.values()))
    for label, r in results.items():
        fit = ", ".join(f"{k} {v:.3f} s" for k, v in r.get("timings", {}).items())
        print(f"fit ({label}): {fit}")
    for label, r in results.items():
        m = r["metrics"]
        print(f"metrics ({label}): " + ", ".join(f"{k}={m[k]:.8f}" for k in ("IC", "Rank IC", OBJECTIVE) if k in m))


if __name__ == "__main__":
    main()
