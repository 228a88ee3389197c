"""PyTorch models: ``mlp`` (Qlib's DNNModelPytorch), ``gru`` and ``alstm`` (Qlib's ALSTM), one training loop.

The loop: mini-batches (random rows for ``loss: mse``; whole days for the IC-aware
``loss: ic``), optimizer adam/adamw/sgd with weight decay, ReduceLROnPlateau on the
early-stopping metric, early stopping on valid loss or valid IC with the best weights
restored, a checkpoint after every epoch (``<checkpoint_dir>/checkpoint.pt``, written
atomically) that ``resume: true`` continues from, per-epoch step metrics in the active
MLflow run, and a rich progress bar (``progress: false`` silences it).

Determinism: each epoch seeds torch and the batch order from ``(seed, epoch)``, so the
same seed gives identical CPU predictions, and a resumed training follows exactly the
path an uninterrupted one would have taken.

Inputs: the MLP takes feature rows. GRU/ALSTM take sequences, either Qlib's way (the row
is ``d_feat`` groups of days, as Alpha360's 6 x 60: ``window: null``) or from the
time-series sampler (``window: k`` days of all F features per instrument, any feature
set). Saved as ``model.pt`` (state_dict) + ``model.json`` (config); :func:`load_model`
reads them back with ``weights_only=True``, never unpickling a module.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qframe.core.atomic import atomic_path
from qframe.core.errors import ConfigError
from qframe.core.panel import Panel
from qframe.core.timeseries import TimeSeriesSampler
from qframe.plugins.models.torch_nets import ACTIVATIONS, build_net

log = logging.getLogger("qframe")

OPTIMIZERS = ("adam", "adamw", "sgd")
LOSSES = ("mse", "ic")
STOP_METRICS = ("loss", "ic")
INPUT_NORMS = ("robust", "none")
_NORM_SAMPLE = 200_000  # train rows the robust input statistics are estimated from
DEVICES = ("auto", "cpu", "cuda")
RNN_TYPES = ("gru", "lstm")
FORMAT = 1  # model.json layout version
CHECKPOINT = "checkpoint.pt"


def _check(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"model.{key}: {message}")


def _choice(value: str, key: str, options: Sequence[str]) -> str:
    _check(value in options, key, f"unknown value {value!r}; valid options: {', '.join(options)}")
    return value


class _Rows:
    """Training/prediction input from a float32 matrix: rows, optionally reshaped to (steps, d_feat)."""

    def __init__(self, X: np.ndarray, y: np.ndarray | None, day: np.ndarray | None, d_feat: int | None, norm) -> None:
        self.X, self.y, self.day, self.d_feat, self.norm = X, y, day, d_feat, norm

    def __len__(self) -> int:
        return len(self.X)

    def batch(self, rows: np.ndarray) -> np.ndarray:
        x = self.norm(self.X[rows])
        if self.d_feat is None:
            return x
        # Qlib's layout: d_feat groups of `steps` days each, oldest first -> (batch, steps, d_feat)
        return x.reshape(len(rows), self.d_feat, -1).transpose(0, 2, 1)


class _Windows:
    """Sequence input from the time-series sampler."""

    def __init__(self, sampler: TimeSeriesSampler, y: np.ndarray | None, day: np.ndarray | None, norm) -> None:
        self.sampler, self.y, self.day, self.norm = sampler, y, day, norm

    def __len__(self) -> int:
        return len(self.sampler)

    def batch(self, rows: np.ndarray) -> np.ndarray:
        # the sampler leaves missing days NaN, so they become 0 after normalisation, like missing features
        return self.norm(self.sampler.batch(rows))


def daily_ic(pred: np.ndarray, label: np.ndarray, day: np.ndarray | None) -> float:
    """Mean per-day Pearson IC of ``pred`` with ``label`` (one cross-section when ``day`` is None)."""
    ok = np.isfinite(pred) & np.isfinite(label)
    if day is None:
        day = np.zeros(len(pred), dtype=np.int64)
    p, y, d = pred[ok].astype(np.float64), label[ok].astype(np.float64), day[ok]
    if len(p) < 2:
        return float("nan")
    _, inv, counts = np.unique(d, return_inverse=True, return_counts=True)
    mp, my = np.bincount(inv, p) / counts, np.bincount(inv, y) / counts
    dp, dy = p - mp[inv], y - my[inv]
    cov, vp, vy = np.bincount(inv, dp * dy), np.bincount(inv, dp * dp), np.bincount(inv, dy * dy)
    with np.errstate(invalid="ignore", divide="ignore"):
        ic = cov / np.sqrt(vp * vy)
    ic = ic[(counts >= 2) & np.isfinite(ic)]
    return float(ic.mean()) if len(ic) else float("nan")


def _ic_loss(pred: torch.Tensor, y: torch.Tensor, group: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Minus the mean per-day Pearson correlation of a batch made of whole days."""
    ones = torch.ones_like(pred)
    count = torch.zeros(n_groups, dtype=pred.dtype, device=pred.device).index_add_(0, group, ones)
    mean_p = torch.zeros_like(count).index_add_(0, group, pred) / count
    mean_y = torch.zeros_like(count).index_add_(0, group, y) / count
    dp, dy = pred - mean_p[group], y - mean_y[group]
    cov = torch.zeros_like(count).index_add_(0, group, dp * dy)
    var_p = torch.zeros_like(count).index_add_(0, group, dp * dp)
    var_y = torch.zeros_like(count).index_add_(0, group, dy * dy)
    corr = cov / torch.sqrt(var_p * var_y + 1e-12)
    return -corr[count >= 2].mean()


def _log_step_metrics(metrics: dict[str, float], step: int) -> None:
    # MLflow is only consulted when the process already imported it (the workflow does): a bare fit stays light
    if "mlflow" not in sys.modules:
        return
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)}, step=step)


def _atomic_save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        if isinstance(obj, dict) and path.suffix == ".json":
            tmp.write_text(json.dumps(obj))
        else:
            torch.save(obj, tmp)


class TorchModel:
    """The shared trainer; subclasses define the network config and the input layout.

    Args (training; network keys are documented on each subclass):
        lr: learning rate. optimizer: adam, adamw or sgd (momentum ``momentum``). weight_decay: L2 / decoupled decay.
        batch_size: rows per step (for ``loss: ic``, whole days up to about this many rows).
        max_epochs: passes over the train segment. early_stop: epochs without improvement before stopping (0: never).
        early_stop_metric: "loss" (valid loss, lower is better) or "ic" (valid mean daily IC, higher is better).
        lr_patience, lr_factor, min_lr: ReduceLROnPlateau on the early-stopping metric (lr_patience 0: off).
        loss: "mse" or "ic" (minus the mean per-day Pearson correlation).
        input_norm: "robust" (per-feature median/MAD z-score fitted on train, clipped to +-3, as Qlib's
            RobustZScoreNorm) or "none". NaN inputs become 0 either way.
        seed: seeds weights, dropout and batch order. device: auto (cuda if available), cpu or cuda.
        num_threads: torch CPU threads (null: torch's default). progress: show a progress bar.
        checkpoint_dir: where ``checkpoint.pt`` is written after every epoch (null: the run's directory the
            workflow gives; none outside a workflow). resume: continue from the checkpoint in that directory.
    """

    kind = ""

    def __init__(
        self,
        lr: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        batch_size: int = 2048,
        max_epochs: int = 100,
        early_stop: int = 10,
        early_stop_metric: str = "loss",
        lr_patience: int = 5,
        lr_factor: float = 0.5,
        min_lr: float = 1e-6,
        loss: str = "mse",
        seed: int = 0,
        device: str = "auto",
        num_threads: int | None = None,
        progress: bool = True,
        checkpoint_dir: str | None = None,
        resume: bool = False,
        eval_batch_size: int = 8192,
        input_norm: str = "robust",
    ) -> None:
        _check(float(lr) > 0, "lr", f"must be > 0, got {lr}")
        _check(float(weight_decay) >= 0, "weight_decay", f"must be >= 0, got {weight_decay}")
        _check(int(batch_size) >= 2, "batch_size", f"must be >= 2, got {batch_size}")
        _check(int(max_epochs) >= 1, "max_epochs", f"must be >= 1, got {max_epochs}")
        _check(int(early_stop) >= 0, "early_stop", f"must be >= 0 (0: never stop early), got {early_stop}")
        _check(int(lr_patience) >= 0, "lr_patience", f"must be >= 0 (0: no LR schedule), got {lr_patience}")
        _check(0 < float(lr_factor) < 1, "lr_factor", f"must be in (0, 1), got {lr_factor}")
        _check(num_threads is None or int(num_threads) >= 1, "num_threads", f"must be >= 1 or null, got {num_threads}")
        self.lr = float(lr)
        self.optimizer = _choice(optimizer, "optimizer", OPTIMIZERS)
        self.weight_decay = float(weight_decay)
        self.momentum = float(momentum)
        self.batch_size = int(batch_size)
        self.max_epochs = int(max_epochs)
        self.early_stop = int(early_stop)
        self.early_stop_metric = _choice(early_stop_metric, "early_stop_metric", STOP_METRICS)
        self.lr_patience = int(lr_patience)
        self.lr_factor = float(lr_factor)
        self.min_lr = float(min_lr)
        self.loss = _choice(loss, "loss", LOSSES)
        self.seed = int(seed)
        self.device = _choice(device, "device", DEVICES)
        self.num_threads = None if num_threads is None else int(num_threads)
        self.progress = bool(progress)
        self.checkpoint_dir = None if checkpoint_dir in (None, "") else Path(checkpoint_dir).expanduser()
        self.resume = bool(resume)
        self.eval_batch_size = max(int(eval_batch_size), 1)
        self.input_norm = _choice(input_norm, "input_norm", INPUT_NORMS)
        self._center: np.ndarray | None = None
        self._scale: np.ndarray | None = None
        self.net: torch.nn.Module | None = None
        self.spec: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []
        self._info: dict[str, Any] = {}

    # ---- what subclasses provide -------------------------------------------------------------------------------
    def _net_spec(self, n_features: int) -> dict[str, Any]:
        raise NotImplementedError

    def _source(self, part: Panel, history: Sequence[Panel] = ()) -> _Rows | _Windows:
        return _Rows(part.X, part.y, part.day, None, self._normalise)

    def _matrix_source(self, X: np.ndarray, y: np.ndarray | None) -> _Rows:
        return _Rows(X, y, None, None, self._normalise)

    # ---- input normalisation -----------------------------------------------------------------------------------
    def _fit_norm(self, X: np.ndarray) -> None:
        if self.input_norm == "none":
            self._center = self._scale = None
            return
        rows = np.arange(len(X))
        if len(rows) > _NORM_SAMPLE:
            rows = np.sort(np.random.default_rng(self.seed).choice(len(X), _NORM_SAMPLE, replace=False))
        sample = X[rows].astype(np.float64)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: their statistics fall back to 0 / 1
            center = np.nanmedian(sample, axis=0)
            scale = np.nanmedian(np.abs(sample - center), axis=0) * 1.4826
        self._center = np.nan_to_num(center).astype(np.float32)
        self._scale = np.where(np.isfinite(scale) & (scale > 1e-12), scale, 1.0).astype(np.float32)

    def _normalise(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self._center is not None:
            x = np.clip((x - self._center) / self._scale, -3.0, 3.0)
        return np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)

    # ---- the model contract --------------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, X_valid: np.ndarray, y_valid: np.ndarray) -> None:
        """Train on plain rows (valid IC is then one cross-section: prefer :meth:`fit_panel`)."""
        self.spec = self._net_spec(X.shape[1])
        self._fit_norm(X)
        valid = self._matrix_source(X_valid, y_valid) if len(X_valid) else None
        self._train(self._matrix_source(X, y), valid, self.checkpoint_dir)

    def fit_panel(self, train: Panel, valid: Panel, workdir: Path | None = None, progress: Any = None) -> None:
        """Train on panels (per-day IC, sequence windows); checkpoints go to ``checkpoint_dir`` or ``workdir``.

        ``progress`` (a :class:`qframe.core.progress.Progress`) hears of every epoch; without one, the model shows
        its own progress bar (``progress: false`` in its config silences it).
        """
        self.spec = self._net_spec(train.X.shape[1])
        self._fit_norm(train.X)
        train_src = self._source(train)
        valid_src = self._source(valid, history=[train]) if len(valid) else None
        self._train(train_src, valid_src, self.checkpoint_dir or workdir, progress)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._predict(self._matrix_source(X, None))

    def predict_panel(self, panel: Panel, history: Sequence[Panel] = ()) -> np.ndarray:
        """One score per row of ``panel``; ``history`` holds earlier segments the first windows may look back into."""
        return self._predict(self._source(panel, history))

    def save(self, directory: Path) -> list[Path]:
        if self.net is None:
            raise ConfigError(f"model {self.kind!r} is not trained; nothing to save")
        directory = Path(directory)
        weights, config = directory / "model.pt", directory / "model.json"
        torch.save({k: v.detach().cpu() for k, v in self.net.state_dict().items()}, weights)
        config.write_text(json.dumps(self._config(), indent=2))
        return [weights, config]

    def info(self) -> dict[str, Any]:
        return dict(self._info)

    def _config(self) -> dict[str, Any]:
        params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self).items() if not k.startswith("_")}
        for k in ("net", "spec", "history"):
            params.pop(k, None)
        norm = None
        if self._center is not None:
            norm = {"center": self._center.tolist(), "scale": self._scale.tolist()}
        return {"format": FORMAT, "kind": self.kind, "spec": self.spec, "params": params, "input_norm_state": norm}

    # ---- training --------------------------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("model.device=cuda but no CUDA device is available; use model.device=auto or cpu")
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _make_optimizer(self, params) -> torch.optim.Optimizer:
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    def _batches(self, src: _Rows | _Windows, rng: np.random.Generator) -> list[np.ndarray]:
        labelled = np.flatnonzero(np.isfinite(src.y))
        if self.loss == "ic" and src.day is not None:
            # whole days per batch: the loss compares predictions within each day's cross-section
            days = src.day[labelled]
            starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
            groups = np.split(labelled, starts[1:])
            batches, current, size = [], [], 0
            for g in rng.permutation(len(groups)):
                current.append(groups[g])
                size += len(groups[g])
                if size >= self.batch_size:
                    batches.append(np.concatenate(current))
                    current, size = [], 0
            if current:
                batches.append(np.concatenate(current))
            return batches
        order = labelled[rng.permutation(len(labelled))]
        batches = [np.sort(order[i : i + self.batch_size]) for i in range(0, len(order), self.batch_size)]
        # a 1-row last batch breaks BatchNorm; fold it into the previous one
        if len(batches) > 1 and len(batches[-1]) < 2:
            batches[-2] = np.sort(np.r_[batches[-2], batches.pop()])
        return batches

    def _batch_loss(self, net, src, rows, device) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(src.batch(rows))).to(device)
        y = torch.from_numpy(np.ascontiguousarray(src.y[rows], dtype=np.float32)).to(device)
        pred = net(x)
        if self.loss == "ic":
            day = src.day[rows] if src.day is not None else np.zeros(len(rows), dtype=np.int64)
            _, group = np.unique(day, return_inverse=True)
            return _ic_loss(pred, y, torch.from_numpy(group.astype(np.int64)).to(device), int(group.max()) + 1)
        return torch.mean((pred - y) ** 2)

    def _evaluate(self, net, src, device) -> tuple[float, float]:
        pred = self._predict_with(net, src, device)
        y = src.y.astype(np.float64)
        ok = np.isfinite(y)
        ic = daily_ic(pred, src.y, src.day)
        if self.loss == "ic":
            return -ic, ic
        loss = float(np.mean((pred[ok] - y[ok]) ** 2)) if ok.any() else float("nan")
        return loss, ic

    def _predict_with(self, net, src, device) -> np.ndarray:
        net.eval()
        out = []
        with torch.no_grad():
            for lo in range(0, len(src), self.eval_batch_size):
                rows = np.arange(lo, min(lo + self.eval_batch_size, len(src)))
                x = torch.from_numpy(np.ascontiguousarray(src.batch(rows))).to(device)
                out.append(net(x).float().cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.empty(0)

    def _predict(self, src) -> np.ndarray:
        if self.net is None:
            raise ConfigError(f"model {self.kind!r} is not trained; call fit first")
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        device = next(self.net.parameters()).device
        return self._predict_with(self.net, src, device)

    def _train(self, train, valid, ckpt_dir: Path | None, reporter: Any = None) -> None:
        if not np.isfinite(train.y).any():
            raise ConfigError("the train segment has no finite label to fit")
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        device = self._device()
        torch.manual_seed(self.seed)
        net = build_net(self.kind, self.spec).to(device)
        opt = self._make_optimizer(net.parameters())
        higher = self.early_stop_metric == "ic" and valid is not None
        sched = None
        if self.lr_patience > 0:
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode="max" if higher else "min", factor=self.lr_factor, patience=self.lr_patience,
                min_lr=self.min_lr,
            )  # fmt: skip
        state = {"epoch": 0, "best_score": None, "best_epoch": 0, "bad_epochs": 0, "history": [], "done": False}
        best_weights = copy.deepcopy(net.state_dict())
        resumed_from = None
        if ckpt_dir is not None:
            ckpt_dir = Path(ckpt_dir)
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            path = ckpt_dir / CHECKPOINT
            if self.resume:
                if not path.exists():
                    raise ConfigError(
                        f"model.resume=true but there is no checkpoint at {path}; set model.checkpoint_dir to the "
                        "directory of the interrupted training"
                    )
                ck = torch.load(path, map_location=device, weights_only=True)
                if ck["spec"] != json.dumps(self.spec, sort_keys=True):
                    raise ConfigError(f"the checkpoint at {path} is of another network: {ck['spec']}")
                net.load_state_dict(ck["net"])
                opt.load_state_dict(ck["optimizer"])
                if sched is not None and ck.get("scheduler"):
                    sched.load_state_dict(ck["scheduler"])
                best_weights = ck["best_net"]
                state = json.loads(ck["state"])
                resumed_from = state["epoch"]
                log.info("%s: resuming from the checkpoint of epoch %d in %s", self.kind, resumed_from, ckpt_dir)
        elif self.resume:
            raise ConfigError("model.resume=true needs model.checkpoint_dir (the interrupted training's directory)")

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn(f"{self.kind} epochs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[status]}"))  # fmt: skip
        with Progress(*columns, disable=not self.progress or reporter is not None, transient=True) as bar:
            task = bar.add_task("train", total=self.max_epochs, completed=state["epoch"], status="")
            for epoch in range(state["epoch"] + 1, self.max_epochs + 1):
                if state["done"]:
                    break
                torch.manual_seed(self.seed * 100_003 + epoch)  # dropout draws: a function of (seed, epoch)
                rng = np.random.default_rng([self.seed, epoch])
                net.train()
                total, count = 0.0, 0
                for rows in self._batches(train, rng):
                    opt.zero_grad()
                    loss = self._batch_loss(net, train, rows, device)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(rows)
                    count += len(rows)
                record = {"epoch": epoch, "train_loss": total / max(count, 1), "lr": opt.param_groups[0]["lr"]}
                if valid is not None:
                    record["valid_loss"], record["valid_ic"] = self._evaluate(net, valid, device)
                    score = record["valid_ic"] if higher else record["valid_loss"]
                else:
                    score = record["train_loss"]
                if sched is not None and math.isfinite(score):
                    sched.step(score)
                best = state["best_score"]
                if best is None or (math.isfinite(score) and (score > best if higher else score < best)):
                    state.update(best_score=score, best_epoch=epoch, bad_epochs=0)
                    best_weights = copy.deepcopy(net.state_dict())
                else:
                    state["bad_epochs"] += 1
                state["epoch"] = epoch
                state["history"].append(record)
                if self.early_stop and state["bad_epochs"] >= self.early_stop:
                    state["done"] = True
                _log_step_metrics({f"epoch.{k}": float(v) for k, v in record.items() if k != "epoch"}, epoch)
                if ckpt_dir is not None:
                    ck = {
                        "net": net.state_dict(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict() if sched is not None else {},
                        "best_net": best_weights,
                        "spec": json.dumps(self.spec, sort_keys=True),
                        "state": json.dumps(state),
                    }
                    _atomic_save(ck, ckpt_dir / CHECKPOINT)
                    _atomic_save({"epoch": epoch, "best_epoch": state["best_epoch"]}, ckpt_dir / "checkpoint.json")
                status = "  ".join(f"{k} {v:.4g}" for k, v in record.items() if k not in ("epoch", "lr"))
                bar.update(task, completed=epoch, status=status)
                if reporter is not None:
                    reporter.update(f"epoch {epoch}/{self.max_epochs}  {status}", epoch, self.max_epochs)
        net.load_state_dict(best_weights)
        net.eval()
        self.net = net
        self.history = state["history"]
        self._info = {
            "epochs": state["epoch"],
            "best_epoch": state["best_epoch"],
            "best_score": state["best_score"],
            "early_stop_metric": self.early_stop_metric if valid is not None else "train_loss",
            "device": str(device),
        }
        if resumed_from is not None:
            self._info["resumed_from_epoch"] = resumed_from
        log.info("%s: best epoch %d of %d on %s", self.kind, state["best_epoch"], state["epoch"], device)


class MLPModel(TorchModel):
    """Qlib's DNNModelPytorch: a feed-forward net on feature rows.

    Network keys: hidden_sizes (list of widths, e.g. [256]), activation (leaky_relu, relu, tanh, gelu),
    dropout (input and hidden), batch_norm.
    """

    kind = "mlp"

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (256,),
        activation: str = "leaky_relu",
        dropout: float = 0.05,
        batch_norm: bool = True,
        **train: Any,
    ) -> None:
        super().__init__(**train)
        if isinstance(hidden_sizes, str):  # "512x256": the scalar form a search space can choose between
            valid = bool(re.fullmatch(r"\d+(x\d+)*", hidden_sizes))
            _check(valid, "hidden_sizes", f"expected e.g. 512x256, got {hidden_sizes!r}")
            hidden_sizes = [int(h) for h in hidden_sizes.split("x")]
        sizes = [hidden_sizes] if isinstance(hidden_sizes, int) else list(hidden_sizes)
        _check(all(int(h) >= 1 for h in sizes), "hidden_sizes", f"every layer needs >= 1 unit, got {sizes}")
        _check(0 <= float(dropout) < 1, "dropout", f"must be in [0, 1), got {dropout}")
        self.hidden_sizes = [int(h) for h in sizes]
        self.activation = _choice(activation, "activation", tuple(ACTIVATIONS))
        self.dropout = float(dropout)
        self.batch_norm = bool(batch_norm)

    def _net_spec(self, n_features: int) -> dict[str, Any]:
        return {
            "input_dim": n_features, "hidden_sizes": self.hidden_sizes, "activation": self.activation,
            "dropout": self.dropout, "batch_norm": self.batch_norm,
        }  # fmt: skip


class SequenceModel(TorchModel):
    """Shared input handling of GRU/ALSTM.

    ``window: null``: each feature row is ``d_feat`` groups of days (Qlib's Alpha360 layout, 6 x 60), reshaped to
    (days, d_feat). ``window: k``: the time-series sampler gives the last k days of all features per instrument.
    Network keys: hidden_size, num_layers, dropout.
    """

    def __init__(
        self,
        d_feat: int = 6,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        window: int | None = None,
        **train: Any,
    ) -> None:
        super().__init__(**train)
        _check(int(hidden_size) >= 1, "hidden_size", f"must be >= 1, got {hidden_size}")
        _check(int(num_layers) >= 1, "num_layers", f"must be >= 1, got {num_layers}")
        _check(int(d_feat) >= 1, "d_feat", f"must be >= 1, got {d_feat}")
        _check(0 <= float(dropout) < 1, "dropout", f"must be in [0, 1), got {dropout}")
        _check(window is None or int(window) >= 1, "window", f"must be >= 1 day or null, got {window}")
        self.d_feat = int(d_feat)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)
        self.window = None if window is None else int(window)

    def _input_dim(self, n_features: int) -> int:
        if self.window is not None:
            return n_features
        if n_features % self.d_feat:
            raise ConfigError(
                f"model {self.kind}: {n_features} features do not split into model.d_feat={self.d_feat} series; "
                f"use handler=alpha360 (6 series x 60 days), set model.d_feat, or set model.window=20 to feed "
                "the last 20 days of any feature set"
            )
        return self.d_feat

    def _net_spec(self, n_features: int) -> dict[str, Any]:
        return {
            "d_feat": self._input_dim(n_features), "hidden_size": self.hidden_size,
            "num_layers": self.num_layers, "dropout": self.dropout if self.num_layers > 1 else 0.0,
        }  # fmt: skip

    def _source(self, part: Panel, history: Sequence[Panel] = ()) -> _Rows | _Windows:
        if self.window is None:
            return _Rows(part.X, part.y, part.day, self.d_feat, self._normalise)
        sampler = TimeSeriesSampler(part, self.window, history, fill_value=np.nan, fill_nan=False)
        return _Windows(sampler, part.y, part.day, self._normalise)

    def _matrix_source(self, X: np.ndarray, y: np.ndarray | None) -> _Rows:
        if self.window is not None:
            raise ConfigError(
                f"model {self.kind} with model.window={self.window} needs the dates and instruments of each row; "
                "train it through the workflow (fit_panel/predict_panel)"
            )
        return _Rows(X, y, None, self.d_feat, self._normalise)

    def fit_panel(self, train: Panel, valid: Panel, workdir: Path | None = None, progress: Any = None) -> None:
        if self.window is not None:
            n_days = len(np.unique(train.day))
            if self.window > n_days:
                raise ConfigError(
                    f"model.window={self.window} days is longer than the train segment ({n_days} days); "
                    "use a shorter window or a longer train segment"
                )
        super().fit_panel(train, valid, workdir, progress)
        # keep copies of the last window-1 days of train/valid, so the first test windows can look back into them
        # without the caller holding on to the (large) learn segments
        self._tail = []
        if self.window is not None and self.window > 1:
            for part in (train, valid):
                if len(part):
                    lo = np.searchsorted(part.day, int(part.day[-1]) - self.window + 2, "left")
                    view = part.rows(int(lo), len(part))
                    self._tail.append(
                        Panel(
                            np.array(view.X),
                            view.y.copy(),
                            view.day.copy(),
                            view.inst.copy(),
                            view.names,
                            view.calendar,
                            view.instruments,
                        )  # fmt: skip
                    )

    def predict_panel(self, panel: Panel, history: Sequence[Panel] = ()) -> np.ndarray:
        """Scores for ``panel``; without ``history``, windows look back into the end of the fitted segments."""
        return super().predict_panel(panel, history or getattr(self, "_tail", ()))


class GRUModel(SequenceModel):
    """Qlib's GRU: a stacked GRU over days; the last hidden state predicts the label."""

    kind = "gru"


class ALSTMModel(SequenceModel):
    """Qlib's ALSTM: input map, a GRU/LSTM (``rnn_type``), temporal attention over its states."""

    kind = "alstm"

    def __init__(self, rnn_type: str = "gru", **params: Any) -> None:
        super().__init__(**params)
        self.rnn_type = _choice(rnn_type, "rnn_type", RNN_TYPES)
        _check(
            self.hidden_size >= 2,
            "hidden_size",
            f"ALSTM needs >= 2 (attention uses hidden_size // 2), got {self.hidden_size}",
        )

    def _net_spec(self, n_features: int) -> dict[str, Any]:
        return {**super()._net_spec(n_features), "rnn_type": self.rnn_type}


MODELS: dict[str, type[TorchModel]] = {"mlp": MLPModel, "gru": GRUModel, "alstm": ALSTMModel}


def load_model(directory: Path) -> TorchModel:
    """A trained model from ``model.json`` + ``model.pt`` (weights read with ``weights_only=True``)."""
    directory = Path(directory)
    config = json.loads((directory / "model.json").read_text())
    params = dict(config["params"])
    params["progress"] = False
    model = MODELS[config["kind"]](**params)
    model.spec = config["spec"]
    norm = config.get("input_norm_state")
    if norm:
        model._center = np.asarray(norm["center"], dtype=np.float32)
        model._scale = np.asarray(norm["scale"], dtype=np.float32)
    net = build_net(model.kind, model.spec)
    net.load_state_dict(torch.load(directory / "model.pt", map_location="cpu", weights_only=True))
    net.eval()
    model.net = net
    return model
