import pytest

from qframe.core.discovery import DEFAULT_PLUGINS, get_plugin_manager, get_plugins
from qframe.core.errors import ConfigError
from qframe.core.hookspecs import hookimpl
from qframe.core.registry import Item, Registry, build_registry, get_registry


def test_builtins_register_through_hooks_with_provenance():
    reg = get_registry()
    assert {"lightgbm", "linear"} <= set(reg.names("model"))
    assert "topk_dropout" in reg.names("strategy")
    assert {"synthetic", "csv", "qlib"} <= set(reg.names("dataset"))
    assert "alpha158" in reg.names("feature_set")
    assert {"dropna_label", "zscore_norm", "cs_rank_norm"} <= set(reg.names("processor"))
    item = reg.get("model", "lightgbm")
    assert item.plugin in DEFAULT_PLUGINS and item.description


def test_unknown_and_wrong_kind_names_list_valid_options():
    reg = get_registry()
    with pytest.raises(ConfigError, match="unknown model 'lgbm'; valid options: ") as err:
        reg.get("model", "lgbm")
    assert {"lightgbm", "linear"} <= set(str(err.value).split("valid options: ")[1].split(", "))
    with pytest.raises(ConfigError, match="is a strategy, not a model"):
        reg.get("model", "topk_dropout")


def test_duplicate_name_names_both_plugins():
    class Dup:
        @hookimpl
        def register_models(self, register):
            register("linear", object, "shadow")

    pm = get_plugin_manager()
    pm.register(Dup(), name="dup-plugin")
    try:
        with pytest.raises(ConfigError, match="registered twice.*qframe.plugins.models.*dup-plugin"):
            build_registry(get_plugins())
    finally:
        pm.unregister(name="dup-plugin")


def test_item_without_name_or_object():
    reg = Registry()
    with pytest.raises(ConfigError, match="without a name"):
        reg.add(Item("model", "", object, "", "p"))
    with pytest.raises(ConfigError, match="without an object"):
        reg.add(Item("model", "x", None, "", "p"))
