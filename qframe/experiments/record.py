"""``qframe.record``: a run of the user's own code, tracked the qframe way (the seeds' ``R.start`` recorder).

Status lifecycle: RUNNING while the block runs, then FINISHED; FAILED when it raises (the error as the
``qframe.error`` tag); KILLED on Ctrl-C. ``resume=RUN`` reopens an existing run instead of starting one.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from qframe.experiments.store import ERROR_TAG, KIND_TAG, RecordedRun, RunStore, resolve_uri


class Recorder:
    """An open run: ``log_params``, ``log_metrics``, ``set_tags``, ``save_objects``, ``load_object``."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store = store
        self.id = run_id

    @property
    def client(self) -> Any:
        return self.store.client

    def log_params(self, **params: Any) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def log_metrics(self, step: int = 0, **metrics: float) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.id, metrics=[Metric(k, float(v), now, int(step)) for k, v in metrics.items()])

    def set_tags(self, **tags: Any) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.id, tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()])

    def save_objects(self, artifact_path: str | None = None, allow_pickle: bool = False, **objects: Any) -> None:
        """Each object as an artifact named after its keyword: DataFrames and Series as Parquet, dicts and lists
        as JSON, strings as text, numpy arrays as ``.npy``; anything else only pickled, with ``allow_pickle``."""
        import numpy as np
        import pandas as pd

        with tempfile.TemporaryDirectory(prefix="qframe-record-") as tmp:
            out = Path(tmp)
            for name, obj in objects.items():
                if isinstance(obj, pd.Series):
                    obj = obj.to_frame()
                if isinstance(obj, pd.DataFrame):
                    obj.to_parquet(out / f"{name}.parquet")
                elif isinstance(obj, (dict, list)):
                    (out / f"{name}.json").write_text(json.dumps(obj, default=str, indent=2))
                elif isinstance(obj, str):
                    (out / f"{name}.txt").write_text(obj)
                elif isinstance(obj, np.ndarray):
                    np.save(out / f"{name}.npy", obj, allow_pickle=False)
                elif allow_pickle:
                    import pickle

                    (out / f"{name}.pkl").write_bytes(pickle.dumps(obj))
                else:
                    raise TypeError(
                        f"save_objects({name}=...): a {type(obj).__name__} has no safe format (DataFrame, Series, "
                        "dict, list, str, numpy array); pass allow_pickle=True to pickle it"
                    )
            self.client.log_artifacts(self.id, str(out), artifact_path)

    def load_object(self, name: str, allow_pickle: bool = False) -> Any:
        return RecordedRun(self.store, self.client.get_run(self.id)).load(name, allow_pickle)


class record:  # noqa: N801 - used as a function: `with qframe.record(...) as rec`
    """A tracked run of your own code: ``with qframe.record(experiment="study", run_name="a") as rec: ...``.

    ``resume``: a RUN (id, prefix, ``last``, name) to continue. The store is the one ``qframe`` records to here
    (``tracking_uri``, else ``MLFLOW_TRACKING_URI``, else ``<workdir>/mlflow.db``), created if need be.
    """

    def __init__(
        self,
        experiment: str = "qframe",
        run_name: str | None = None,
        resume: str | None = None,
        tracking_uri: str | None = None,
        workdir: str | Path | None = None,
        tags: dict[str, Any] | None = None,
    ) -> None:
        self.experiment, self.run_name, self.resume = experiment, run_name, resume
        self.tracking_uri, self.workdir = tracking_uri, workdir
        self.tags = {k: str(v) for k, v in (tags or {}).items()}
        self.recorder: Recorder | None = None

    def __enter__(self) -> Recorder:
        from qframe.core import tracking

        uri, workdir = resolve_uri(self.tracking_uri, self.workdir)
        store = RunStore(uri, workdir)
        if self.resume is not None:
            run = RunStore.open(self.tracking_uri, self.workdir).resolve(self.resume)
            store.client.update_run(run.info.run_id, status="RUNNING")
            self.recorder = Recorder(store, run.info.run_id)
            return self.recorder
        experiment_id = tracking.ensure_experiment(uri, self.experiment, workdir / "artifacts")
        tags = {**tracking.source_tags(), KIND_TAG: "record", **self.tags}
        run = store.client.create_run(experiment_id, run_name=self.run_name, tags=tags)
        self.recorder = Recorder(store, run.info.run_id)
        tracking.log_uncommitted_diff(lambda path: store.client.log_artifact(run.info.run_id, str(path)), tags)
        return self.recorder

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        rec = self.recorder
        if rec is None:
            return False
        if exc is None:
            rec.client.set_terminated(rec.id, "FINISHED")
        elif isinstance(exc, KeyboardInterrupt):
            rec.client.set_terminated(rec.id, "KILLED")
        else:
            try:  # never hide the block's own error behind a tracking one
                rec.client.set_tag(rec.id, ERROR_TAG, f"{type(exc).__name__}: {exc}"[:5000])
            finally:
                rec.client.set_terminated(rec.id, "FAILED")
        return False
