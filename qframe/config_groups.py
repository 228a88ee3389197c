"""Hydra config groups: qframe's own (``conf/``) merged with those the loaded plugins ship.

The Hydra search-path plugin (``hydra_plugins/qframe_searchpath``) puts the plugins' ``conf/`` directories on the
search path; this module lists the options they add, so the CLI can check ``group=option`` before Hydra starts and
refuse an option two sources both ship.
"""

from __future__ import annotations

from pathlib import Path

from qframe.core.discovery import Plugins, plugin_conf_dirs
from qframe.core.errors import ConfigError


def group_options(conf_root: Path) -> dict[str, list[str]]:
    """Config group (``model``, ``hydra/sweeper``...) -> option names found under ``conf_root``."""
    groups: dict[str, list[str]] = {}
    for f in sorted(conf_root.rglob("*.yaml")):
        rel = f.relative_to(conf_root)
        if len(rel.parts) < 2:  # a primary config at the root, not a group option
            continue
        groups.setdefault("/".join(rel.parts[:-1]), []).append(f.stem)
    return groups


def merged_config_groups(builtin_root: Path, plugins: Plugins | None = None) -> dict[str, list[str]]:
    """Config groups of qframe plus those of every loaded plugin.

    A plugin option that already exists (built-in, or shipped by an earlier plugin) is a :class:`ConfigError`
    naming the plugin and the file: Hydra would silently pick one of the two.
    """
    groups = {g: list(opts) for g, opts in group_options(builtin_root).items()}
    owner = {(g, o): "qframe (built-in)" for g, opts in groups.items() for o in opts}
    for plugin_name, root in plugin_conf_dirs(plugins):
        for group, opts in group_options(root).items():
            for opt in opts:
                if (group, opt) in owner:
                    raise ConfigError(
                        f"plugin {plugin_name!r} ships config {group}/{opt}.yaml ({root / group / (opt + '.yaml')}), "
                        f"which clashes with the {group} option {opt!r} of {owner[(group, opt)]}; "
                        "rename the plugin's file or uninstall one of them"
                    )
                owner[(group, opt)] = f"plugin {plugin_name!r}"
                groups.setdefault(group, []).append(opt)
    return {g: sorted(opts) for g, opts in groups.items()}
