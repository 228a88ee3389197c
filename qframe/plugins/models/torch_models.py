"""PyTorch models: ``mlp`` (Qlib's DNNModelPytorch), ``gru`` and ``alstm`` (Qlib's ALSTM), one trainer.

The trainer (:class:`TorchModel`): mini-batches (random rows for ``loss: mse``; whole days for the IC-aware
``loss: ic``), optimizer adam/adamw/sgd with weight decay, ReduceLROnPlateau on the early-stopping metric, early
stopping on valid loss or valid IC with the best weights restored, a checkpoint after every epoch that
``resume: true`` continues from, per-epoch step metrics in the active MLflow run, and a rich progress bar
(``progress: false`` silences it). Its parts live beside it: the inputs and batch order in
:mod:`~qframe.plugins.models.torch_batches`, losses and validation scores in
:mod:`~qframe.plugins.models.torch_metrics`, checkpoints in :mod:`~qframe.plugins.models.torch_checkpoint`, the
per-epoch reporting in :mod:`~qframe.plugins.models.torch_reporting`, the networks in
:mod:`~qframe.plugins.models.torch_nets`.

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
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qframe.core.errors import ConfigError
from qframe.core.evaluation import mean_daily_ic as daily_ic  # noqa: F401  (the name callers import from here)
from qframe.core.panel import Panel
from qframe.core.timeseries import TimeSeriesSampler
from qframe.plugins.models.torch_batches import InputSource, RowSource, WindowSource, train_batches
from qframe.plugins.models.torch_checkpoint import Checkpoint
from qframe.plugins.models.torch_metrics import LOSSES, training_loss, validation_scores
from qframe.plugins.models.torch_nets import ACTIVATIONS, build_net
from qframe.plugins.models.torch_reporting import EpochProgress, log_epoch_metrics

log = logging.getLogger("qframe")

OPTIMIZERS = ("adam", "adamw", "sgd")
STOP_METRICS = ("loss", "ic")
INPUT_NORMS = ("robust", "none")
_NORM_SAMPLE = 200_000  # train rows the robust input statistics are estimated from
DEVICES = ("auto", "cpu", "cuda")
RNN_TYPES = ("gru", "lstm")
#: days without a row in a ``window: k`` sample: "zero" (qframe's: a missing day is 0 after normalisation) or
#: "ffill_bfill" (Qlib's gru_ts/alstm_ts: the nearest earlier day's row, the first days the nearest later one)
WINDOW_FILLS = ("zero", "ffill_bfill")
FORMAT = 1  # model.json layout version


def _check(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"model.{key}: {message}")


def _choice(value: str, key: str, options: Sequence[str]) -> str:
    _check(value in options, key, f"unknown value {value!r}; valid options: {', '.join(options)}")
    return value


@dataclass
class TrainingProgress:
    """The training loop's bookkeeping; every checkpoint saves it (as JSON) for a resumed training to continue."""

    epoch: int = 0
    best_score: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    done: bool = False

    def end_epoch(self, record: dict[str, float], score: float, higher_is_better: bool, patience: int) -> bool:
        """Books a finished epoch and its early-stopping ``score``; True when that is the best so far.

        After ``patience`` epochs in a row without a better score (0: never) the training is ``done``.
        """
        epoch, best = int(record["epoch"]), self.best_score
        improved = best is None or (math.isfinite(score) and (score > best if higher_is_better else score < best))
        if improved:
            self.best_score, self.best_epoch, self.bad_epochs = score, epoch, 0
        else:
            self.bad_epochs += 1
        self.epoch = epoch
        self.history.append(record)
        if patience and self.bad_epochs >= patience:
            self.done = True
        return improved


@dataclass
class _Run:
    """The live objects of one training: what each epoch changes and a checkpoint saves."""

    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None
    device: torch.device
    higher_is_better: bool  # the early-stopping score is the valid IC
    best_weights: dict[str, torch.Tensor]
    progress: TrainingProgress = field(default_factory=TrainingProgress)


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
        self._weight: np.ndarray | None = None  # the train rows' weights of the training under way

    # ---- what subclasses provide -------------------------------------------------------------------------------
    def _net_spec(self, n_features: int) -> dict[str, Any]:
        raise NotImplementedError

    def _source(self, part: Panel, history: Sequence[Panel] = ()) -> InputSource:
        return RowSource(part.X, part.y, part.day, None, self._normalise)

    def _matrix_source(self, X: np.ndarray, y: np.ndarray | None) -> RowSource:
        return RowSource(X, y, None, None, self._normalise)

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
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        X_valid: np.ndarray,
        y_valid: np.ndarray,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        """Train on plain rows (valid IC is then one cross-section: prefer :meth:`fit_panel`)."""
        self.spec = self._net_spec(X.shape[1])
        self._fit_norm(X)
        valid = self._matrix_source(X_valid, y_valid) if len(X_valid) else None
        self._train(self._matrix_source(X, y), valid, self.checkpoint_dir, weight=sample_weight)

    def fit_panel(
        self,
        train: Panel,
        valid: Panel,
        workdir: Path | None = None,
        progress: Any = None,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        """Train on panels (per-day IC, sequence windows); checkpoints go to ``checkpoint_dir`` or ``workdir``.

        ``progress`` (a :class:`qframe.core.progress.Progress`) hears of every epoch; without one, the model shows
        its own progress bar (``progress: false`` in its config silences it). ``sample_weight`` (one per train row)
        weighs each row's share of the training loss (:func:`~qframe.plugins.models.torch_metrics.training_loss`);
        the valid scores that stop the training stay unweighted.
        """
        self.spec = self._net_spec(train.X.shape[1])
        self._fit_norm(train.X)
        train_src = self._source(train)
        valid_src = self._source(valid, history=[train]) if len(valid) else None
        self._train(train_src, valid_src, self.checkpoint_dir or workdir, progress, sample_weight)

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

    def _predict_with(self, net: torch.nn.Module, src: InputSource, device: torch.device) -> np.ndarray:
        net.eval()
        out = []
        with torch.no_grad():
            for lo in range(0, len(src), self.eval_batch_size):
                rows = np.arange(lo, min(lo + self.eval_batch_size, len(src)))
                x = torch.from_numpy(np.ascontiguousarray(src.batch(rows))).to(device)
                out.append(net(x).float().cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.empty(0)

    def _predict(self, src: InputSource) -> np.ndarray:
        if self.net is None:
            raise ConfigError(f"model {self.kind!r} is not trained; call fit first")
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        device = next(self.net.parameters()).device
        return self._predict_with(self.net, src, device)

    def _train(
        self,
        train: InputSource,
        valid: InputSource | None,
        ckpt_dir: Path | None,
        reporter: Any = None,
        weight: np.ndarray | None = None,
    ) -> None:
        """Trains ``self.net`` on ``train`` (its rows weighted by ``weight``, one per row; None: alike),
        early-stopped on ``valid`` (on the train loss without one)."""
        if not np.isfinite(train.y).any():
            raise ConfigError("the train segment has no finite label to fit")
        if weight is not None and len(weight) != len(train):
            raise ValueError(f"sample_weight has {len(weight)} weights for {len(train)} train rows")
        self._weight = None if weight is None else np.asarray(weight, dtype=np.float32)
        run = self._start_run(higher_is_better=self.early_stop_metric == "ic" and valid is not None)
        checkpoint = self._checkpoint(ckpt_dir)
        resumed_from = self._resume(run, checkpoint) if checkpoint is not None and self.resume else None
        with EpochProgress(self.kind, self.max_epochs, run.progress.epoch, self.progress, reporter) as shown:
            for epoch in range(run.progress.epoch + 1, self.max_epochs + 1):
                if run.progress.done:
                    break
                record = self._epoch(run, train, valid, epoch)
                # logged before the checkpoint: a training killed in between logs this epoch again on resume
                log_epoch_metrics(record)
                if checkpoint is not None:
                    checkpoint.save(run.net, run.optimizer, run.scheduler, run.best_weights, asdict(run.progress))
                shown.update(record)
        self._finish(run, valid is not None, resumed_from)

    def _start_run(self, higher_is_better: bool) -> _Run:
        """A fresh network (weights drawn from ``seed``) on its device, with its optimizer and LR schedule."""
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        device = self._device()
        torch.manual_seed(self.seed)
        net = build_net(self.kind, self.spec).to(device)
        optimizer = self._make_optimizer(net.parameters())
        scheduler = None
        if self.lr_patience > 0:
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max" if higher_is_better else "min", factor=self.lr_factor,
                patience=self.lr_patience, min_lr=self.min_lr,
            )  # fmt: skip
        return _Run(net, optimizer, scheduler, device, higher_is_better, copy.deepcopy(net.state_dict()))

    def _checkpoint(self, ckpt_dir: Path | None) -> Checkpoint | None:
        if ckpt_dir is None:
            if self.resume:
                raise ConfigError("model.resume=true needs model.checkpoint_dir (the interrupted training's directory)")
            return None
        return Checkpoint(ckpt_dir, self.spec)

    def _resume(self, run: _Run, checkpoint: Checkpoint) -> int:
        """Continues ``run`` from ``checkpoint``; the epoch it had reached."""
        state, run.best_weights = checkpoint.restore(run.net, run.optimizer, run.scheduler, run.device)
        run.progress = TrainingProgress(**state)
        epoch = run.progress.epoch
        log.info("%s: resuming from the checkpoint of epoch %d in %s", self.kind, epoch, checkpoint.directory)
        return epoch

    def _epoch(self, run: _Run, train: InputSource, valid: InputSource | None, epoch: int) -> dict[str, float]:
        """One epoch: a pass over train, the valid scores, the LR schedule, the early-stopping bookkeeping.

        Returns the epoch's record (as ``history`` keeps it).
        """
        record = {"epoch": epoch, "train_loss": self._train_pass(run, train, epoch)}
        record["lr"] = run.optimizer.param_groups[0]["lr"]
        score = record["train_loss"]
        if valid is not None:
            record["valid_loss"], record["valid_ic"] = self._validate(run, valid)
            score = record["valid_ic"] if run.higher_is_better else record["valid_loss"]
        if run.scheduler is not None and math.isfinite(score):
            run.scheduler.step(score)
        if run.progress.end_epoch(record, score, run.higher_is_better, self.early_stop):
            run.best_weights = copy.deepcopy(run.net.state_dict())
        return record

    def _train_pass(self, run: _Run, train: InputSource, epoch: int) -> float:
        """One pass of optimizer steps over the labelled train rows; the mean training loss per row."""
        torch.manual_seed(self.seed * 100_003 + epoch)  # dropout draws: a function of (seed, epoch)
        rng = np.random.default_rng([self.seed, epoch])
        day_groups = train.day if self.loss == "ic" else None  # batches of whole days: the IC loss is per day
        run.net.train()
        total, count = 0.0, 0
        for rows in train_batches(train.y, day_groups, self.batch_size, rng):
            run.optimizer.zero_grad()
            x = torch.from_numpy(np.ascontiguousarray(train.batch(rows))).to(run.device)
            y = torch.from_numpy(np.ascontiguousarray(train.y[rows], dtype=np.float32)).to(run.device)
            w = None if self._weight is None else torch.from_numpy(self._weight[rows]).to(run.device)
            loss = training_loss(run.net(x), y, None if day_groups is None else day_groups[rows], self.loss, w)
            loss.backward()
            run.optimizer.step()
            total += float(loss.detach()) * len(rows)
            count += len(rows)
        return total / max(count, 1)

    def _validate(self, run: _Run, valid: InputSource) -> tuple[float, float]:
        """(valid loss, valid mean daily IC) of the network as it is now."""
        return validation_scores(self._predict_with(run.net, valid, run.device), valid.y, valid.day, self.loss)

    def _finish(self, run: _Run, has_valid: bool, resumed_from: int | None) -> None:
        """Keeps the best epoch's weights as the model, and what the training did as ``history`` and ``info``."""
        run.net.load_state_dict(run.best_weights)
        run.net.eval()
        self.net = run.net
        self._weight = None  # a copy of one float per train row: not kept with the trained model
        progress = run.progress
        self.history = progress.history
        self._info = {
            "epochs": progress.epoch,
            "best_epoch": progress.best_epoch,
            "best_score": progress.best_score,
            "early_stop_metric": self.early_stop_metric if has_valid else "train_loss",
            "device": str(run.device),
        }
        if resumed_from is not None:
            self._info["resumed_from_epoch"] = resumed_from
        log.info("%s: best epoch %d of %d on %s", self.kind, progress.best_epoch, progress.epoch, run.device)


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
    (days, d_feat). ``window: k``: the time-series sampler gives the last k days of all features per instrument;
    ``window_fill`` says what a day without a row becomes (``zero`` or Qlib's ``ffill_bfill``).
    Network keys: hidden_size, num_layers, dropout.
    """

    def __init__(
        self,
        d_feat: int = 6,
        hidden_size: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        window: int | None = None,
        window_fill: str = "zero",
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
        self.window_fill = _choice(window_fill, "window_fill", WINDOW_FILLS)

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

    def _source(self, part: Panel, history: Sequence[Panel] = ()) -> InputSource:
        if self.window is None:
            return RowSource(part.X, part.y, part.day, self.d_feat, self._normalise)
        fill = "ffill_bfill" if self.window_fill == "ffill_bfill" else "value"
        sampler = TimeSeriesSampler(part, self.window, history, fill_value=np.nan, fill_nan=False, fill=fill)
        return WindowSource(sampler, part.y, part.day, self._normalise)

    def _matrix_source(self, X: np.ndarray, y: np.ndarray | None) -> RowSource:
        if self.window is not None:
            raise ConfigError(
                f"model {self.kind} with model.window={self.window} needs the dates and instruments of each row; "
                "train it through the workflow (fit_panel/predict_panel)"
            )
        return RowSource(X, y, None, self.d_feat, self._normalise)

    def fit_panel(
        self,
        train: Panel,
        valid: Panel,
        workdir: Path | None = None,
        progress: Any = None,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        if self.window is not None:
            n_days = len(np.unique(train.day))
            if self.window > n_days:
                raise ConfigError(
                    f"model.window={self.window} days is longer than the train segment ({n_days} days); "
                    "use a shorter window or a longer train segment"
                )
        super().fit_panel(train, valid, workdir, progress, sample_weight)
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
