"""Hydra search-path plugin: adds the config directory of every loaded qframe plugin to qframe's search path.

So ``pip install`` of a plugin that ships ``conf/model/mymodel.yaml`` makes ``qframe model=mymodel`` work, and the
option shows in ``qframe --help``. Hydra imports this module in every process of every Hydra app: keep the module
level to Hydra imports only, and act only for qframe's own app.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


def _is_qframe_app(search_path: ConfigSearchPath) -> bool:
    try:
        from qframe.app import conf_dir
    except ImportError:
        return False
    own = conf_dir().resolve()
    for element in search_path.get_path():
        if element.provider == "main" and element.path:
            path = element.path.removeprefix("file://")
            if Path(path).resolve() == own:
                return True
    return False


class QFramePluginSearchPath(SearchPathPlugin):
    """Appends ``file://<plugin conf dir>`` for each loaded qframe plugin (after qframe's own configs)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if not _is_qframe_app(search_path):
            return
        from qframe.core.discovery import plugin_conf_dirs

        for plugin_name, path in plugin_conf_dirs():
            search_path.append(provider=f"qframe-plugin-{plugin_name}", path=f"file://{path}")
