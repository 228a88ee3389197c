"""Qlib 0.9.7 and qframe side by side on the same Qlib data directory, stage by stage, in one run.

    python benchmarks/bench_peer.py [--rounds 1] [--peer DIR] [--data DIR] [--keep] [-- qframe overrides ...]
    python benchmarks/bench_peer.py --from WORKDIR/results.json     # the table of a kept (--keep) run again

The peer is the Qlib 0.9.7 venv that ``../shared/peer/setup.sh`` installs in ``$QLIBPEER`` (default
``~/.cache/qlibpeer``, README-qlibpeer.md there): its ``make_data.py`` writes the 300 x 2500 synthetic market in
Qlib's bin layout (once, deterministic), its ``make_config.py`` Qlib's LightGBM + Alpha158 benchmark config on
that directory (2 LightGBM threads), its ``run_stages.py`` runs Qlib's workflow timing each stage. qframe reads the
same directory (``dataset=qlib``) with the same settings, taken from that config: dates and segments, the model's
hyper-parameters (LightGBM's default ``bin_construct_sample_cnt``), TopK-dropout 50/5, costs, ``preset=qlib``; and
does the same work (no random-score controls, no report: Qlib does neither).

Each round runs, one after the other: Qlib; qframe **cold** (a new process and a new work directory: no feature or
market cache, a new MLflow store); qframe **warm** (a new process on the cold run's work directory: its caches).
Every run is its own process, measured from outside the same way: wall time from start to exit, CPU time (user +
system, from ``wait4``) and peak RSS of the process tree, summed over its processes, sampled every 50 ms from /proc.
Stage times are the runs' own (run_stages.py's stages and Qlib's timer log; qframe's ``RunResult.timings`` through
``bench_workflow.py --child``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETUP = HERE.parent.parent / "shared" / "peer" / "setup.sh"  # where the project keeps the peer's recipe
ROWS = ("data + features + label", "processors", "LightGBM fit", "predict", "IC", "backtest + risk", "rest")
QLIB_TIMER = re.compile(r"Time cost: ([\d.]+)s \| (.+?) Done")


def fail(message: str) -> None:
    sys.exit(f"bench_peer: error: {message}")


# ---------------------------------------------------------------------------------------------------------------------
# measuring a process from outside


def tree_rss(pid: int) -> int:
    """Bytes of RSS of ``pid`` and all its descendants (from /proc, what psutil reads)."""
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    total, todo = 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, ()))
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * page
        except OSError:
            pass
    return total


def measured(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float, log: Path) -> dict:
    """Run ``cmd``; its wall and CPU seconds, peak tree RSS (MB), exit status, stdout (stderr goes to ``log``)."""
    peak = 0
    done = threading.Event()
    with open(log, "w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=err, text=True)

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, tree_rss(proc.pid))
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
        reader.start()
        deadline = start + timeout
        status, usage = 0, None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        reader.join(timeout=10)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4 above: Popen must not wait again
    return {
        "rc": proc.returncode,
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_mb": peak / 2**20,
        "maxrss_mb": usage.ru_maxrss / 1024,  # the largest single process (its own high-water mark)
        "stdout": "".join(out),
        "load": os.getloadavg()[0],  # 1-minute load average as the run ended: how shared the machine was
    }


# ---------------------------------------------------------------------------------------------------------------------
# the peer


def find_peer(peer: Path) -> Path:
    """The peer's python, or one error line saying how to set it up."""
    python = peer / "venv" / "bin" / "python"
    scripts = [peer / s for s in ("make_data.py", "make_config.py", "run_stages.py")]
    has_qlib = glob.glob(str(peer / "venv" / "lib" / "python*" / "site-packages" / "qlib" / "__init__.py"))
    if not python.is_file() or not has_qlib or not all(s.is_file() for s in scripts):
        missing = "venv/bin/python with qlib" if not (python.is_file() and has_qlib) else "its scripts"
        fail(
            f"no Qlib peer in {peer} ({missing} missing): set it up with `bash {SETUP}` "
            "(installs pyqlib 0.9.7 in its own venv, ~2 min), or point --peer / QLIBPEER at one"
        )
    return python


def ensure_data(python: Path, peer: Path, data: Path) -> None:
    if (data / "calendars" / "day.txt").is_file() and (data / "meta.json").is_file():
        return
    print(f"writing the synthetic Qlib data directory {data} (make_data.py)", flush=True)
    proc = subprocess.run([str(python), str(peer / "make_data.py"), "--out", str(data)], capture_output=True, text=True)
    if proc.returncode != 0:
        fail(f"{peer / 'make_data.py'} failed: {proc.stderr.strip().splitlines()[-1:]}")


def qlib_config(python: Path, peer: Path, data: Path, out: Path, threads: int) -> dict:
    cmd = [str(python), str(peer / "make_config.py"), "--data", str(data), "--num-threads", str(threads)]
    proc = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True)
    if proc.returncode != 0:
        fail(f"{peer / 'make_config.py'} failed: {proc.stderr.strip().splitlines()[-1:]}")
    import yaml

    return yaml.safe_load(out.read_text())


def qframe_overrides(cfg: dict) -> list[str]:
    """qframe's command line for the run Qlib's config describes (same data, dates, model, strategy, costs)."""
    task = cfg["task"]
    handler = task["dataset"]["kwargs"]["handler"]["kwargs"]
    segments = task["dataset"]["kwargs"]["segments"]
    model = task["model"]["kwargs"]
    port = next(r["kwargs"]["config"] for r in task["record"] if r["class"] == "PortAnaRecord")
    strategy, exchange = port["strategy"]["kwargs"], port["backtest"]["exchange_kwargs"]
    if model.pop("loss", "mse") != "mse" or exchange.get("deal_price", "close") != "close":
        fail("the peer's config is not the LightGBM mse / close-price benchmark this script maps to qframe")
    out = [
        "dataset=qlib",
        f"dataset.provider_uri={cfg['qlib_init']['provider_uri']}",
        f"dataset.market={handler['instruments']}",
        f"dataset.benchmark={port['backtest']['benchmark']}",
        f"dataset.start={handler['start_time']}",
        f"dataset.end={handler['end_time']}",
        "preset=qlib",
        "model=lightgbm",
        *(f"segments.{seg}=[{lo},{hi}]" for seg, (lo, hi) in segments.items()),
        *(f"model.{key}={value}" for key, value in model.items()),
        # Qlib's LGBModel leaves LightGBM's own sampling (200000 rows) and trains up to 1000 rounds, early stop 50
        "model.bin_construct_sample_cnt=200000",
        "model.num_boost_round=1000",
        "model.early_stopping_rounds=50",
        f"strategy.topk={strategy['topk']}",
        f"strategy.n_drop={strategy['n_drop']}",
        f"strategy.account={float(port['backtest']['account'])}",
        f"strategy.limit_threshold={exchange['limit_threshold']}",
        *(f"strategy.{k}={float(exchange[k])}" for k in ("open_cost", "close_cost", "min_cost")),
        # the work Qlib's workflow does: no random-score controls, no report figures
        "evaluation.controls.enabled=false",
        "recording.plots=false",
    ]
    return out


def qlib_stages(run_dir: Path, log: Path) -> tuple[dict[str, float], dict]:
    result = json.loads((run_dir / "stages.json").read_text())
    wall = {s["stage"].split(" (")[0]: s["wall_s"] for s in result["stages"]}
    timer = {name: float(sec) for sec, name in QLIB_TIMER.findall(log.read_text())}
    handler = wall["dataset/feature construction"]
    processors = timer.get("fit & process data", 0.0)
    stages = {
        "data + features + label": handler - processors,
        "processors": processors,
        "LightGBM fit": wall["model fit"],
        "predict": wall["prediction"],
        "IC": wall["SigAnaRecord"],
        "backtest + risk": wall["PortAnaRecord"],
    }
    metrics = {
        "IC": result["ic_mean"],
        "Rank IC": result["rank_ic_mean"],
        "excess IR (cost)": result["metrics"].get("1day.excess_return_with_cost.information_ratio", float("nan")),
    }
    return stages, metrics


def qframe_stages(child: dict) -> tuple[dict[str, float], dict, str]:
    t = child["timings"]
    stages = {
        "data + features + label": t.get("data", 0.0) + t.get("features", 0.0),
        "processors": t.get("processors", 0.0),
        "LightGBM fit": t.get("fit", 0.0),
        "predict": t.get("predict", 0.0),
        "IC": t.get("signal analysis", 0.0),
        "backtest + risk": t.get("backtest + risk", 0.0),
    }
    m = child["metrics"]
    metrics = {
        "IC": m["IC"],
        "Rank IC": m["Rank IC"],
        "excess IR (cost)": m["excess_return_with_cost.information_ratio"],
    }
    split = f"{t.get('data', 0.0):.2f} + {t.get('features', 0.0):.2f}"
    return stages, metrics, split


# ---------------------------------------------------------------------------------------------------------------------


def cell(values: list[float], fmt: str = "{:.2f}") -> str:
    return " / ".join(fmt.format(v) for v in values)


def report(runs: dict[str, list[dict]]) -> None:
    """Print the side-by-side table (Markdown) and the targets' verdicts of ``runs`` (Qlib, cold, warm)."""
    rounds = len(runs["qlib"])
    for res in (x for side in runs.values() for x in side):
        res["stages"]["rest"] = res["wall"] - sum(res["stages"].values())
    qlib_wall = statistics.median(x["wall"] for x in runs["qlib"])
    qlib_peak = statistics.median(x["peak_mb"] for x in runs["qlib"])
    sides = {"Qlib 0.9.7": runs["qlib"], "qframe cold": runs["cold"], "qframe warm": runs["warm"]}
    print(f"\n{rounds} round(s), values per round (r1 / r2 ...); load average now {os.getloadavg()[0]:.1f}\n")
    print("| stage (s) | " + " | ".join(sides) + " |")
    print("|---|" + "---:|" * len(sides))
    for row in ROWS:
        cells = []
        for name, side in sides.items():
            text = cell([x["stages"][row] for x in side])
            if row == ROWS[0] and name != "Qlib 0.9.7":
                text = " / ".join(x["split"] for x in side) + " (data + features)"
            cells.append(text)
        print(f"| {row} | " + " | ".join(cells) + " |")
    print("| **wall** | " + " | ".join(f"**{cell([x['wall'] for x in s], '{:.1f}')}**" for s in sides.values()) + " |")
    print("| CPU (user + sys) | " + " | ".join(cell([x["cpu"] for x in s], "{:.1f}") for s in sides.values()) + " |")
    print(
        "| **peak RSS (MB, process tree)** | "
        + " | ".join(f"**{cell([x['peak_mb'] for x in s], '{:.0f}')}**" for s in sides.values())
        + " |"
    )
    print(
        "| Qlib's wall / this wall | 1 | "
        + " | ".join(cell([qlib_wall / x["wall"] for x in runs[k]], "{:.1f}x") for k in ("cold", "warm"))
        + " |"
    )
    qlib_cpu = statistics.median(x["cpu"] for x in runs["qlib"])
    print(
        "| Qlib's CPU / this CPU | 1 | "
        + " | ".join(cell([qlib_cpu / x["cpu"] for x in runs[k]], "{:.1f}x") for k in ("cold", "warm"))
        + " |"
    )
    print(
        "| peak RSS / Qlib's | 1 | "
        + " | ".join(cell([x["peak_mb"] / qlib_peak for x in runs[k]]) for k in ("cold", "warm"))
        + " |"
    )
    for metric in ("IC", "Rank IC", "excess IR (cost)"):
        print(
            f"| {metric} | "
            + " | ".join(cell([x["metrics"][metric] for x in s], "{:.4f}") for s in sides.values())
            + " |"
        )
    print(
        "| load average at the end | "
        + " | ".join(cell([x.get("load", float("nan")) for x in s], "{:.1f}") for s in sides.values())
        + " |"
    )
    cold = statistics.median(qlib_wall / x["wall"] for x in runs["cold"])
    warm = statistics.median(qlib_wall / x["wall"] for x in runs["warm"])
    # the memory target holds for both kinds of run: each side's largest peak
    cold_mb, warm_mb = (max(x["peak_mb"] for x in runs[side]) / qlib_peak for side in ("cold", "warm"))
    verdict = {True: "met", False: "not met"}
    print(
        f"\ntargets: cold >= 4x Qlib's wall: {cold:.1f}x ({verdict[cold >= 4]}); warm >= 5x: {warm:.1f}x "
        f"({verdict[warm >= 5]}); peak RSS <= 1/2 Qlib's: cold {cold_mb:.2f} ({verdict[cold_mb <= 0.5]}), "
        f"warm {warm_mb:.2f} ({verdict[warm_mb <= 0.5]})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1, help="Qlib, qframe cold, qframe warm: this many times")
    parser.add_argument("--peer", type=Path, default=Path(os.environ.get("QLIBPEER", "~/.cache/qlibpeer")))
    parser.add_argument("--data", type=Path, help="the Qlib data directory (default: the peer's qlib_data/synth_cn)")
    parser.add_argument("--threads", type=int, default=2, help="LightGBM num_threads on both sides")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds one run may take")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, stores, configs)")
    parser.add_argument("overrides", nargs="*", help="extra qframe overrides (after --)")
    parser.add_argument("--from", dest="source", type=Path, help="print the table of a kept run's results.json")
    opts = parser.parse_args()
    if opts.source:
        report(json.loads(opts.source.read_text()))
        return
    peer = opts.peer.expanduser().resolve()
    python = find_peer(peer)
    data = (opts.data or peer / "qlib_data" / "synth_cn").expanduser().resolve()
    ensure_data(python, peer, data)

    work = Path(tempfile.mkdtemp(prefix="qframe-peer-"))
    cfg_path = work / "qlib_config.yaml"
    overrides = [*qframe_overrides(qlib_config(python, peer, data, cfg_path, opts.threads)), *opts.overrides]
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("QFRAME_", "MLFLOW_TRACKING"))}
    base_env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    qlib_env = {**base_env, "MLFLOW_ALLOW_FILE_STORE": "true"}  # MLflow 3.17 refuses Qlib's ./mlruns store otherwise
    print(f"data: {data}\nwork directory: {work}\nqframe overrides: {' '.join(overrides)}", flush=True)

    runs: dict[str, list[dict]] = {"qlib": [], "cold": [], "warm": []}
    for r in range(1, opts.rounds + 1):
        qdir = work / f"qlib_{r}"
        qdir.mkdir()
        log = qdir / "stderr.log"
        cmd = [str(python), str(peer / "run_stages.py"), str(cfg_path), "stages.json"]
        res = measured(cmd, qdir, qlib_env, opts.timeout, log)
        if res["rc"] != 0:
            fail(f"Qlib run {r} exited {res['rc']}; its log: {log} (last line: {log.read_text().splitlines()[-1:]})")
        res["stages"], res["metrics"] = qlib_stages(qdir, log)
        runs["qlib"].append(res)
        print(f"round {r}: Qlib {res['wall']:.1f} s, {res['peak_mb']:.0f} MB", flush=True)

        qf_work = work / f"qframe_{r}"  # new for each round: the cold run finds no cache
        for label in ("cold", "warm"):
            log = work / f"qframe_{r}_{label}.log"
            cmd = [sys.executable, str(HERE / "bench_workflow.py"), "--child", str(qf_work), *overrides]
            res = measured(cmd, work, base_env, opts.timeout, log)
            if res["rc"] != 0:
                last = log.read_text().strip().splitlines()[-1:]
                fail(f"qframe {label} run {r} exited {res['rc']}: {last}; its log: {log}")
            child = json.loads(res["stdout"].strip().splitlines()[-1])
            res["stages"], res["metrics"], res["split"] = qframe_stages(child)
            runs[label].append(res)
            print(f"round {r}: qframe {label} {res['wall']:.1f} s, {res['peak_mb']:.0f} MB", flush=True)

    results = {side: [{k: v for k, v in x.items() if k != "stdout"} for x in xs] for side, xs in runs.items()}
    (work / "results.json").write_text(json.dumps(results, indent=1))
    report(runs)
    if opts.keep:
        print(f"kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
