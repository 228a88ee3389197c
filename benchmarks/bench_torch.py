"""Epoch time and peak memory of the torch models on the default 300 x 2500 synthetic market.

Each case runs in its own subprocess (so peak RSS is per case): market -> features (processed as the handler
configs do) -> ``epochs`` training epochs with the valid pass -> one prediction of the test segment.

    python benchmarks/bench_torch.py [--epochs 2] [--device auto] [--threads N] [--cases mlp gru]

Cases: ``mlp`` (MLP [256] on Alpha158, batch 8192), ``gru`` (GRU 64x2 on Alpha360, 60 steps x 6, batch 800),
``gru_window`` (GRU 64x2 fed 20 days of Alpha158 by the time-series sampler, batch 800).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CASES = {
    "mlp": ({"name": "alpha158"}, "mlp", {"batch_size": 8192}),
    "gru": ({"name": "alpha360"}, "gru", {"batch_size": 800}),
    "gru_window": ({"name": "alpha158"}, "gru", {"batch_size": 800, "window": 20}),
}
LEARN = [{"name": "dropna_label"}, {"name": "cs_rank_norm", "fields": "label"}]


def child(case: str, epochs: int, device: str, threads: int | None) -> None:
    import numpy as np

    from qframe.core.handler import prepare
    from qframe.core.registry import get_registry
    from qframe.plugins.datasets.synthetic import SyntheticDataset

    features, model_name, params = CASES[case]
    t0 = time.perf_counter()
    market = SyntheticDataset().load()
    handler = {"features": features, "label": {"horizon": 1}, "processors": [], "learn_processors": LEARN}
    prepared = prepare(market, get_registry(), {**handler, "cache": False}, {"fractions": [0.6, 0.2, 0.2]}, None)
    prep_s = time.perf_counter() - t0
    train, valid, test = (prepared.segments[s] for s in ("train", "valid", "test"))
    model = get_registry().create(
        "model", model_name, max_epochs=epochs, early_stop=0, progress=False, device=device, num_threads=threads,
        **params,
    )  # fmt: skip
    t0 = time.perf_counter()
    model.fit_panel(train, valid)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = model.predict_panel(test)
    predict_s = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import torch

    gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    print(json.dumps({
        "case": case, "rows": [len(train), len(valid), len(test)], "features": train.X.shape[1],
        "prepare_s": prep_s, "epoch_s": fit_s / epochs, "predict_s": predict_s, "peak_rss_mb": rss_mb,
        "gpu_peak_mb": gpu_mb, "device": model.info()["device"], "finite": bool(np.isfinite(pred).all()),
        "threads": torch.get_num_threads(),
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.epochs, args.device, args.threads)
        return
    rows = []
    for case in args.cases:
        cmd = [sys.executable, __file__, "--child", case, "--epochs", str(args.epochs), "--device", args.device]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            sys.exit(out.stderr)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        "| case | device | threads | train/valid/test rows | features | epoch (s) | predict test (s) | peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['device']} | {r['threads']} | {'/'.join(map(str, r['rows']))} | {r['features']} "
            f"| {r['epoch_s']:.1f} | {r['predict_s']:.1f} | {r['peak_rss_mb']:.0f} |"
            + (f" GPU peak {r['gpu_peak_mb']:.0f} MB" if r["gpu_peak_mb"] else "")
        )


if __name__ == "__main__":
    main()
