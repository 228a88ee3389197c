"""``qframe --help`` without Hydra re-reading the config search path for every group it lists.

Hydra 1.3.8 writes the help's "Configuration groups" section with two ``get_group_options`` calls per group
(``list_all_config_groups``, then ``format_config_groups``), and each call builds a new config repository: it
parses the (empty) overrides, loads the primary config and deep-copies it. qframe's ~25 groups (Hydra's own
included) make that ~100 repositories, most of ``--help``'s time (the imports are ~0.3 s of it). While the help
is written, :func:`one_repository_for_group_listings` gives every call for the same config and overrides one
repository; the listing is the same (``tests/test_imports.py`` compares the texts).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from qframe.launch.hydra_compat import VERIFIED_HYDRA, installed_hydra


def asks_for_help(argv: list[str]) -> bool:
    """``qframe --help`` / ``-h`` / ``--hydra-help``: Hydra prints the help and exits without running."""
    return any(a in ("--help", "-h", "--hydra-help") for a in argv)


@contextmanager
def one_repository_for_group_listings(enabled: bool = True) -> Iterator[None]:
    """Within the block, ``ConfigLoaderImpl.get_group_options`` reuses one repository per (config, overrides).

    Only on the Hydra version it was checked on (:data:`VERIFIED_HYDRA`); elsewhere, or with ``enabled`` false,
    Hydra's own method runs.
    """
    if not enabled or installed_hydra() != VERIFIED_HYDRA:
        yield
        return
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.object_type import ObjectType

    original = ConfigLoaderImpl.get_group_options
    repositories: dict[tuple[int, str | None, tuple[str, ...]], Any] = {}

    def get_group_options(
        self: ConfigLoaderImpl,
        group_name: str,
        results_filter: ObjectType | None = ObjectType.CONFIG,
        config_name: str | None = None,
        overrides: list[str] | None = None,
    ) -> list[str]:
        key = (id(self), config_name, tuple(overrides or ()))
        if key not in repositories:
            repositories[key] = self._parse_overrides_and_create_caching_repo(config_name, list(overrides or ()))[1]
        return repositories[key].get_group_options(group_name, results_filter)

    ConfigLoaderImpl.get_group_options = get_group_options  # type: ignore[method-assign]
    try:
        yield
    finally:
        ConfigLoaderImpl.get_group_options = original  # type: ignore[method-assign]
