"""qframe's Hydra callback (``hydra.callbacks.qframe`` in conf/config.yaml): what a multirun settles before its
sweeper and launcher start.

* Hydra's Ray launcher connected to a cluster: hydra-ray-launcher 1.2.2 always passes ``object_store_memory``
  (78 MB, a workaround for its own CI) to ``ray.init``, which Ray refuses when connecting to an existing cluster
  (the store is the cluster's). With an address and no ``object_store_memory`` of the user's, it is set to null
  (:func:`ray_connect_defaults`); a local Ray instance keeps the launcher's default.
* Jobs on other machines with this machine's sqlite or file store: one ``qframe: error:`` line naming a tracking
  server, before any job (:func:`qframe.launch.placement.tracking_reach_error`).

Hydra instantiates callbacks in every run and job (and pickles them to Ray's workers): nothing heavy here.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

from hydra.experimental.callback import Callback

from qframe.core.errors import ConfigError


def ray_connect_defaults(config: Any, environ: Any = None) -> bool:
    """Set Hydra Ray's ``ray.init.object_store_memory`` to null in ``config`` when it connects to a cluster and the
    user set none (the launcher would pass its 78 MB default, refused by ``ray.init`` with an address); True when
    set."""
    from omegaconf import open_dict, read_write

    from qframe.launch.placement import launcher_of, runs_elsewhere

    place = launcher_of(config, os.environ if environ is None else environ)
    if place.kind != "ray" or not runs_elsewhere(place.kind, place.address):
        return False
    init = config.hydra.launcher.ray.init
    if "object_store_memory" in init:  # the user's own value (null included): theirs to keep
        return False
    with read_write(init), open_dict(init):
        init.object_store_memory = None
    return True


def check_tracking_reach(config: Any, environ: Any = None) -> None:
    """Raise the one-line :class:`ConfigError` of :func:`~qframe.launch.placement.tracking_reach_error` for the
    composed ``config``'s launcher and tracking store."""
    from omegaconf import OmegaConf

    from qframe.core.context import locate
    from qframe.launch.placement import launcher_of, runs_elsewhere, tracking_reach_error

    environ = os.environ if environ is None else environ
    place = launcher_of(config, environ)
    if not runs_elsewhere(place.kind, place.address):
        return  # the store is not even resolved: a local multirun pays nothing
    keys = ("workdir", "tracking_uri", "experiment_name")
    location = locate({k: OmegaConf.select(config, k, default=None) for k in keys}, environ)
    problem = tracking_reach_error(place.kind, place.address, location.tracking_uri)
    if problem:
        raise ConfigError(problem)


class QFrameCallback(Callback):
    """Before a multirun's sweeper starts: Ray's connection defaults, and a store every job can reach."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        ray_connect_defaults(config)
        try:
            check_tracking_reach(config)
        except ConfigError as exc:
            # Hydra turns a callback's exception into a warning and goes on: the user's error ends the command here
            from qframe.app import debug_enabled, fail

            if debug_enabled():
                traceback.print_exc()
            fail(str(exc))
