"""Training checkpoints of the torch models: ``checkpoint.pt`` after every epoch, continued by ``resume: true``.

A checkpoint holds the network, optimizer and LR-scheduler state, the best weights so far, the network config (a
training resumes only the same network) and the training loop's bookkeeping as JSON. ``checkpoint.json`` beside it
gives the epoch to whoever watches the training. Both are written atomically, so a killed training leaves its last
whole checkpoint; the file is read with ``weights_only=True``, never unpickling an object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from qframe.core.atomic import atomic_path
from qframe.core.errors import ConfigError

CHECKPOINT = "checkpoint.pt"
PROGRESS = "checkpoint.json"


class Checkpoint:
    """The checkpoint of one network (its JSON config ``spec``) in ``directory``, which is created."""

    def __init__(self, directory: Path, spec: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / CHECKPOINT
        self._spec = json.dumps(spec, sort_keys=True)

    def restore(
        self,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: ReduceLROnPlateau | None,
        device: torch.device,
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """Loads the saved state into ``net``, ``optimizer`` and ``scheduler``; returns (loop state, best weights).

        A missing checkpoint or one of another network is a :class:`ConfigError`.
        """
        if not self.path.exists():
            raise ConfigError(
                f"model.resume=true but there is no checkpoint at {self.path}; set model.checkpoint_dir to the "
                "directory of the interrupted training"
            )
        saved = torch.load(self.path, map_location=device, weights_only=True)
        if saved["spec"] != self._spec:
            raise ConfigError(f"the checkpoint at {self.path} is of another network: {saved['spec']}")
        net.load_state_dict(saved["net"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None and saved.get("scheduler"):
            scheduler.load_state_dict(saved["scheduler"])
        return json.loads(saved["state"]), saved["best_net"]

    def save(
        self,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: ReduceLROnPlateau | None,
        best_weights: dict[str, torch.Tensor],
        state: dict[str, Any],
    ) -> None:
        """Writes the checkpoint of the epoch ``state["epoch"]`` (``state``: the loop's JSON-able bookkeeping)."""
        saved = {
            "net": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else {},
            "best_net": best_weights,
            "spec": self._spec,
            "state": json.dumps(state),
        }
        with atomic_path(self.path) as tmp:
            torch.save(saved, tmp)
        with atomic_path(self.directory / PROGRESS) as tmp:
            tmp.write_text(json.dumps({"epoch": state["epoch"], "best_epoch": state["best_epoch"]}))
