"""Every command printed in README.md and docs/*.md runs as printed, so the front door cannot break again.

The commands are read from the Markdown itself: every line of a ```bash / ```sh / ```shell / ```zsh block, every
``$ `` line of a ```console or plain ``` block (with the output printed under it), and README's inline command
spans (`` `qframe ...` ``, `` `pip install ...` ``). A line is cut at ``&&`` and at a trailing ``# comment``
outside quotes, and each part is classified by the first rule of ``RULES`` whose pattern matches it; a line no
rule covers fails as "README command not covered by tests/test_readme.py: <line>", so a command added to the docs
later is run too, or fails loudly.

Each command is its own case, run through ``bash -c`` (quoting exactly as a user's shell does it) in a fresh
working directory, with ``HOME`` a fresh directory (``~`` is an empty home), the venv's ``bin`` first on ``PATH``
(taken from ``sys.executable``), ``MLFLOW_DISABLE_TELEMETRY=true``, no ``QFRAME_*``/``MLFLOW_*``/``PYTHONPATH``
from the outer environment, and a timeout. Only small-size overrides are appended (see ``small_overrides``),
never a key the command sets itself. The default ``qframe`` runs once at full size, as printed; the README's
sample output is compared with what it prints.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

try:
    import readme_support as docs  # tests/ is on sys.path under pytest's default import mode
except ImportError:
    sys.path.insert(0, str(Path(__file__).parent))
    import readme_support as docs

ROOT = docs.ROOT
VENV_BIN = Path(sys.executable).parent
EXAMPLE = ROOT / "examples" / "qframe-example-plugin"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# --------------------------------------------------------------------------------------------- small-size overrides

#: the synthetic default at test size (300 x 2500 -> 40 instruments x 320 days: a few seconds a run)
SMALL_SYNTHETIC = {"dataset.n_instruments": 40, "dataset.n_days": 320}
#: a larger small market where a model's documented settings need more rows: Qlib's LightGBM penalties
#: (lambda_l1 205.7, lambda_l2 581) let no tree split on 40 x 320's ~4k training rows, and qframe refuses the
#: constant prediction (DegenerateResult); 100 x 600 (~18k rows) splits, with the command's model values untouched
SMALL_SYNTHETIC_FOR_MODEL = {"lightgbm": {"dataset.n_instruments": 100, "dataset.n_days": 600}}
#: a rolling study's windows on the small market (2 windows of its 120-day test segment; enough train rows for
#: LightGBM's penalties to split), unless the command sets them
SMALL_ROLLING = {"trainer.step": 60, "trainer.train_days": 360, "trainer.valid_days": 100}
ROLLING_SPANS = ("step", "train_days", "valid_days")
#: the universe is half the synthetic market: a command's own topk (or topk choices) gets a market of at least
#: this many instruments per held name (qframe refuses a topk that holds every tradable name)
INSTRUMENTS_PER_TOPK = 3
#: 40 instruments give a ~20-name universe, and the fixture's csi300 has 25 names: hold 5, swap 1 a day
SMALL_STRATEGY = {"strategy.topk": "5", "strategy.n_drop": "1"}
#: per model: fewer boosting rounds / epochs (the torch models train up to 100-200 epochs; one epoch already
#: writes a checkpoint, evaluates the valid set and restores the best weights), and the sequence nets 16 units wide
#: (the same layers and code; a case at test size takes 39-42 CPU s at their 64 units, 19-20 at 16 for ALSTM,
#: 28-32 and 17-21 for GRU)
SMALL_MODEL = {
    "lightgbm": {"model.num_boost_round": "20"},
    "mlp": {"model.max_epochs": "1"},
    "gru": {"model.max_epochs": "1", "model.hidden_size": "16"},
    "alstm": {"model.max_epochs": "1", "model.hidden_size": "16"},
}
#: the dataset files (csv, qlib) are the 40 x 320 fixture: Qlib's LightGBM penalties leave trees without a split
SMALL_DATA_MODEL = "lightgbm_small"
#: trials of a hyperopt sweep
SMALL_TRIALS = 3

TIMEOUT_RUN = 300
TIMEOUT_SWEEP = 600
TIMEOUT_DEFAULT = 900
TIMEOUT_SERVER = 90


def _conf(path: str) -> dict:
    return yaml.safe_load((ROOT / "conf" / path).read_text()) or {}


def _defaults(conf: dict) -> dict[str, str]:
    """``{group: option}`` of a defaults list (``override /group: x`` entries too)."""
    out = {}
    for entry in conf.get("defaults") or []:
        if isinstance(entry, dict):
            for key, value in entry.items():
                out[key.removeprefix("override ").strip().lstrip("/")] = value
    return out


CONFIG_DEFAULTS = _defaults(_conf("config.yaml"))
EXAMPLE_NAME = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]["name"]
#: the items the example plugin registers (models, recorders, spaces): a command naming one needs the plugin
EXAMPLE_ITEMS = {
    m.group(1) for py in (EXAMPLE / "src").rglob("*.py") for m in re.finditer(r"register\(\s*\"(\w+)\"", py.read_text())
}


# ----------------------------------------------------------------------------------------------------------- a case


@dataclass
class Case:
    """A fresh working directory, a fresh home and the environment a user's new shell would have."""

    tmp: Path
    request: pytest.FixtureRequest | None = None
    cwd: Path = field(init=False)
    home: Path = field(init=False)
    env: dict[str, str] = field(init=False)
    ran: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cwd = self.tmp / "work"
        self.home = self.tmp / "home"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        drop = ("QFRAME_", "MLFLOW_", "XDG_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        for key in ("PYTHONPATH", "BASH_ENV", "ENV", "VIRTUAL_ENV", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST"):
            env.pop(key, None)
        env["HOME"] = str(self.home)
        env["PWD"] = str(self.cwd)
        env["PATH"] = os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        self.env = env

    def use_site(self, site: Path) -> None:
        """Packages installed into ``site`` (a throwaway ``pip install --target``) are importable."""
        self.env["PYTHONPATH"] = str(site)

    def resolve(self, value: str) -> Path:
        """A path as the command's shell and qframe see it: ``~`` and ``$HOME`` in the fake home, relative paths
        in the working directory. A path outside both fails the case: the test does not write there."""
        value = value.strip("'\"")
        for var in ("${HOME}", "$HOME"):
            value = value.replace(var, str(self.home))
        for var in ("${PWD}", "$PWD"):
            value = value.replace(var, str(self.cwd))
        if value == "~" or value.startswith("~/"):
            value = str(self.home) + value[1:]
        path = Path(value) if Path(value).is_absolute() else self.cwd / value
        if not path.resolve().is_relative_to(self.tmp.resolve()):
            pytest.fail(
                f"names {value}, outside the working directory and the home directory: a user without it (or "
                f"without write access there) gets an error, and the test does not write there; print a relative "
                f"path (or one under ~)"
            )
        return path

    def bash(self, command: str, timeout: float) -> subprocess.CompletedProcess:
        """``bash -c command`` in the working directory; on timeout the whole process group is killed."""
        self.ran.append(command)
        proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, err = proc.communicate()
            pytest.fail(f"`{command}` did not finish in {timeout:.0f} s\n{_tail(err)}")
        return subprocess.CompletedProcess(command, proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _tail(text: str, n: int = 25) -> str:
    lines = text.rstrip().splitlines()
    errors = [line for line in lines if line.startswith("qframe: error")]
    head = (errors[0] + "\n...\n") if errors and errors[0] not in lines[-n:] else ""
    return head + "\n".join(lines[-n:])


def expect_ok(proc: subprocess.CompletedProcess, what: str = "") -> None:
    if proc.returncode != 0:
        pytest.fail(
            f"`{proc.args}` exited with status {proc.returncode}{what}\n--- stderr ---\n{_tail(proc.stderr)}"
            f"\n--- stdout ---\n{_tail(proc.stdout, 10)}"
        )


# ------------------------------------------------------------------------------------------------ reading a command


def hydra_args(tokens: list[str]) -> dict[str, str | None]:
    """``{key: value}`` of the overrides a qframe command line sets (``+``/``++`` dropped, ``~key`` -> None).

    A group choice (``model=linear``) is keyed by the group; ``hydra.sweeper.params.<key>=...`` also sets
    ``<key>``."""
    out: dict[str, str | None] = {}
    skip = False
    for token in tokens[1:]:
        if skip:
            skip = False
            continue
        if token in ("--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd", "--cfg", "-c", "-p"):
            skip = True
            continue
        if token.startswith("-"):
            continue
        if "=" not in token:
            out[token.lstrip("~")] = None
            continue
        key, value = token.split("=", 1)
        key = key.lstrip("+~")
        out[key] = value
        if key.startswith("hydra.sweeper.params."):
            out[key.removeprefix("hydra.sweeper.params.").lstrip("+")] = value
    return out


def sweep_values(value: str | None) -> list[str]:
    """The values of a plain grid override (``a,b,c``: commas outside brackets and quotes), else ``[value]``."""
    if value is None:
        return [""]
    if re.match(r"^\w+\(", value):  # choice(...), interval(...), range(...), tag(...)
        return [value]
    parts, depth, quote, start = [], 0, None, 0
    for i, c in enumerate(value):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(value[start:i])
            start = i + 1
    return [*parts, value[start:]]


def tuner_space(name: str) -> tuple[dict[str, str], str | None]:
    """``{key: expression}`` a ``tuner=<name>`` sweep searches (its params and named spaces), and its model."""
    path = ROOT / "conf" / "tuner" / f"{name}.yaml"
    if not path.exists():
        return {}, None
    conf = yaml.safe_load(path.read_text()) or {}
    sweeper = ((conf.get("hydra") or {}).get("sweeper")) or {}
    space = {k.lstrip("+"): str(v) for k, v in (sweeper.get("params") or {}).items()}
    from qframe.core.registry import get_registry

    for named in sweeper.get("spaces") or []:
        obj = get_registry().get("search_space", named).obj
        space |= {k.lstrip("+"): str(v) for k, v in (obj() if callable(obj) else obj).items()}
    return space, _defaults(conf).get("model")


def small_overrides(args: dict[str, str | None]) -> list[str]:
    """The test-size overrides for a qframe command, none for a key the command (or its tuner's space) sets."""
    searched, tuner_model = tuner_space(args["tuner"]) if args.get("tuner") else ({}, None)
    taken = set(args) | set(searched)
    out: list[str] = []

    def add(key: str, value: object) -> None:
        if key not in taken:
            out.append(f"{key}={value}")
            taken.add(key)

    dataset = args.get("dataset") or CONFIG_DEFAULTS["dataset"]
    model = args.get("model") or tuner_model or CONFIG_DEFAULTS["model"]
    if dataset in ("csv", "qlib") and "model" not in taken and tuner_model is None:
        add("model", SMALL_DATA_MODEL)
        model = SMALL_DATA_MODEL
    models = sweep_values(model)
    if dataset == "synthetic":
        size = dict(SMALL_SYNTHETIC)
        for m in models:
            for key, value in SMALL_SYNTHETIC_FOR_MODEL.get(m, {}).items():
                size[key] = max(size[key], value)
        topk = args.get("strategy.topk") or searched.get("strategy.topk") or ""
        held = [int(n) for n in re.findall(r"\d+", topk)]
        if held:
            size["dataset.n_instruments"] = max(size["dataset.n_instruments"], INSTRUMENTS_PER_TOPK * max(held))
        if args.get("trainer") == "rolling" and "segments.fractions" not in taken:
            # the command's own windows need their history before the test segment; the test segment holds two
            # of its steps (two windows: the concatenation is still tested), not 20 % of the days
            rolling = {k: int(args.get(f"trainer.{k}") or SMALL_ROLLING[f"trainer.{k}"]) for k in ROLLING_SPANS}
            test_days = 2 * rolling["step"] + 5
            days = max(size["dataset.n_days"], rolling["train_days"] + rolling["valid_days"] + 20 + test_days)
            size["dataset.n_days"] = days
            learn = (days - test_days) / days
            add("segments.fractions", f"[{learn * 0.75:.4f},{learn * 0.25:.4f},{test_days / days:.4f}]")
        for key, value in size.items():
            add(key, value)
    if args.get("trainer") == "rolling":
        for key, value in SMALL_ROLLING.items():
            add(key, value)
    for key, value in SMALL_STRATEGY.items():
        add(key, value)
    # a grid over models of different kinds (lightgbm,linear) gets no model key: the other model would reject it
    extras = [SMALL_MODEL.get(m, {}) for m in models]
    if all(e == extras[0] for e in extras):
        for key, value in extras[0].items():
            add(key, value)
    return out


def prepare_data(case: Case, args: dict[str, str | None]) -> None:
    """Write the files a dataset command names, from the 40 x 320 fixture market (tests/fixtures/qlib_small)."""
    dataset = args.get("dataset") or CONFIG_DEFAULTS["dataset"]
    if dataset == "csv":
        columns = {k.removeprefix("dataset.columns."): v for k, v in args.items() if k.startswith("dataset.columns.")}
        if args.get("dataset.path"):
            wide = args.get("dataset.format") == "wide"
            docs.write_prices(case.resolve(args["dataset.path"]), columns, wide=wide)
        if args.get("dataset.benchmark_path"):
            docs.write_benchmark(
                case.resolve(args["dataset.benchmark_path"]),
                date_column=columns.get("date", "date"),
                value_column=args.get("dataset.benchmark_column") or "close",
            )
        if args.get("dataset.universe_path"):
            docs.write_universe(case.resolve(args["dataset.universe_path"]))
    elif dataset == "qlib":
        defaults = _conf("dataset/qlib.yaml")
        market = args.get("dataset.market") or defaults["market"]
        assert market in docs.qlib_markets(), f"the fixture's Qlib data has markets {docs.qlib_markets()}, not {market}"
        docs.write_qlib_dir(case.resolve(args.get("dataset.provider_uri") or defaults["provider_uri"]))


def no_outside_paths(case: Case, tokens: list[str]) -> None:
    """A value naming an absolute path (``path:/data/runs.jsonl``) must lie in the case's own directories."""
    for token in tokens[1:]:
        if "=" in token and not token.startswith("-"):
            for m in re.finditer(r"(?:^|[=:,\[{(\s])(/[^\s,\]})'\"]+)", token.split("=", 1)[1]):
                case.resolve(m.group(1))


# ---------------------------------------------------------------------------------------------------------- actions
# Each action runs (or checks) one part of a documented command line in its case.


def check_setup_install(case: Case, text: str, command: docs.Command) -> None:
    """Set-up 1 is what CI's environment set-up itself runs (re-installing would take minutes): check its text."""
    parts = docs.split_and(text)
    assert parts[0] == "python3 -m venv .venv", text
    assert "pip install -c constraints.txt -e '.[torch]'" in text, text
    assert parts[-1] == ".venv/bin/qframe", f"set-up 1 must end by running .venv/bin/qframe: {text}"
    check_extras(case, "pip install -c constraints.txt '.[torch]'", command)


def ci_command() -> str:
    """The test command of .ci/run: its last line (lines before it only prepare the machine, e.g. Chromium)."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    body = [line for line in lines if line and not line.startswith(("#", "set ", "cd "))]
    assert body and body[-1] == lines[-1], f".ci/run should end with its test command, it ends with {lines[-1:]}"
    return body[-1]


def check_test_command(case: Case, text: str, command: docs.Command) -> None:
    """Set-up 2 is the test command: CI runs exactly it (.ci/run); running it here would recurse."""
    assert text == ci_command(), f"README's test command differs from .ci/run:\n  {text}\n  {ci_command()}"


def check_activate(case: Case, text: str, command: docs.Command) -> None:
    """Activating changes only the user's shell: after it, ``qframe`` is the venv's (from the repository root)."""
    venv = ROOT / ".venv"
    assert (venv / "bin" / "activate").exists(), f"no {venv}/bin/activate: the set-up commands create it"
    env = {**case.env, "PATH": os.environ.get("PATH", "").replace(str(VENV_BIN) + os.pathsep, "")}
    proc = subprocess.run(
        ["bash", "-c", f"{text} && command -v qframe"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    expect_ok(proc)
    assert proc.stdout.strip() == str(venv / "bin" / "qframe"), proc.stdout


def do_cd(case: Case, text: str, command: docs.Command) -> None:
    """``cd dir``: later parts of the line run there (it must exist in the fresh directory or the home)."""
    target = case.resolve(shlex.split(text)[1] if len(shlex.split(text)) > 1 else "~")
    assert target.is_dir(), f"{text}: no such directory in a fresh working directory"
    case.cwd = target
    case.env["PWD"] = str(target)


def check_extras(case: Case, text: str, command: docs.Command) -> None:
    """Installing an extra would change the shared venv: check the extras exist in pyproject.toml, and that the
    CI install already put their pinned packages (and constraints.txt's pins) in this venv."""
    m = re.search(r"'(?:\.|qframe)\[([\w,-]+)\]'", text)
    assert m, text
    assert "-c constraints.txt" in text and (ROOT / "constraints.txt").exists(), text
    pins = dict(line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line)
    optional = PYPROJECT["project"]["optional-dependencies"]
    for extra in m.group(1).split(","):
        assert extra in optional, f"extra {extra!r} is not in pyproject.toml (has {sorted(optional)})"
        for requirement in optional[extra]:
            name, _, version = re.sub(r"\[.*?\]", "", requirement).partition("==")
            try:
                installed = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                pytest.fail(f"{requirement} (extra {extra!r}) is not installed in {sys.prefix}")
            # PEP 440: a local build (torch 2.13.0+cpu) satisfies ==2.13.0
            assert SpecifierSet(f"=={version}").contains(installed), f"{name} {installed} installed, {requirement}"
            assert pins.get(name) == version, f"constraints.txt pins {name}=={pins.get(name)}, pyproject {version}"


def install_example_plugin(case: Case, text: str, command: docs.Command) -> None:
    """The example plugin goes into a throwaway ``pip install --no-deps --target`` directory (installing into
    the shared venv would change it for the other tests); the line's qframe part runs with it on PYTHONPATH.
    By name (``pip install qframe-example-plugin``) the package index cannot be reached from a test: the name
    must be the example's own, and the example is installed from its path. The install is the same for every
    case, so it runs once per worker (:func:`example_plugin_site`) and each case gets a copy."""
    target = shlex.split(text)[-1]
    if "/" not in target:
        assert target == EXAMPLE_NAME, f"{text}: the example plugin is {EXAMPLE_NAME!r}"
    site = case.tmp / "site"
    shutil.copytree(case.request.getfixturevalue("example_plugin_site"), site)
    case.use_site(site)


@pytest.fixture(scope="session")
def example_plugin_site(tmp_path_factory) -> Path:
    """The example plugin ``pip install --no-deps --target``-ed into a directory, once per worker (a pip run
    costs seconds; the cases reach this through ``getfixturevalue``, so conftest's rule puts them in no group)."""
    case = Case(tmp_path_factory.mktemp("readme-example-plugin"))
    site = case.tmp / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site)]
        + [str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_RUN,
        env={**case.env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    expect_ok(proc)
    return site


def run_default(case: Case, text: str, command: docs.Command) -> None:
    """``qframe`` with no arguments is the full-size default: run once per session, as printed (the sample
    output test compares what it prints)."""
    if "PYTHONPATH" in case.env:
        proc = case.bash(text, TIMEOUT_DEFAULT)
    else:
        proc = case.request.getfixturevalue("default_run")["proc"]
    expect_ok(proc)
    assert re.search(r"^objective \S+ = ", proc.stdout, re.M), proc.stdout


def run_info(case: Case, text: str, command: docs.Command) -> None:
    """``--help``, ``--version``, ``--cfg``: as printed, exit 0 and the expected content."""
    proc = case.bash(text, TIMEOUT_RUN)
    expect_ok(proc)
    out = proc.stdout
    if re.search(r"\s(--help|-h)$", text):
        for group in sorted(p for p in (ROOT / "conf").iterdir() if p.is_dir()):
            options = sorted(p.stem for p in group.glob("*.yaml"))
            assert re.search(rf"^{group.name}: .*{'.*'.join(options)}", out, re.M), (
                f"--help does not list group {group.name} with {options}:\n{out[:2000]}"
            )
    elif text.endswith("--version"):
        assert out.startswith(f"qframe {PYPROJECT['project']['version']}"), out
    else:  # --cfg job|hydra|all: the composed config as YAML
        cfg = yaml.safe_load(out)
        assert isinstance(cfg, dict) and cfg, out[:2000]
        if text.endswith("job"):
            assert {"dataset", "handler", "model", "strategy"} <= set(cfg), sorted(cfg)


def run_plugins(case: Case, text: str, command: docs.Command) -> None:
    """``qframe plugins [--json] [--hook H]``: as printed; it lists the built-ins, and the example plugin when
    it is installed."""
    proc = case.bash(text, TIMEOUT_RUN)
    expect_ok(proc)
    plugged = "PYTHONPATH" in case.env
    if "--json" in text:
        listed = json.loads(proc.stdout)
        packages = {p.get("package") for p in listed}
        assert "qframe" in packages, packages
        assert EXAMPLE_NAME in packages or not plugged, packages
        return
    hook = re.search(r"--hook[ =](\S+)", text)
    if hook:
        hooks = re.findall(r"^\s*hooks: (.*)$", proc.stdout, re.M)
        assert hooks and all(hook.group(1) in line for line in hooks), proc.stdout
    else:
        assert "qframe.plugins.models" in proc.stdout, proc.stdout
    if plugged and (not hook or hook.group(1) in ("register_models", "register_recorders")):
        assert EXAMPLE_NAME in proc.stdout, f"the example plugin is not listed:\n{proc.stdout}"


def _with_run_id(case: Case, text: str) -> str:
    """``<run id>`` stands for a run made before: make it (the same command without the placeholder's keys and
    without ``resume``) in the same directory, and put its id in the command."""
    tokens = shlex.split(text.replace("<run id>", "RUN_ID"))
    base = [t for t in tokens if "RUN_ID" not in t and not t.startswith("model.resume=")]
    first = shlex.join(base + small_overrides(hydra_args(base)))
    proc = case.bash(first, TIMEOUT_RUN)
    expect_ok(proc, " (the run whose id replaces <run id>)")
    run_id = re.search(r"^MLflow run ([0-9a-f]{32})", proc.stdout, re.M)
    assert run_id, proc.stdout
    return text.replace("<run id>", run_id.group(1))


#: what a placeholder in a documented command stands for: a function of the case and the command, returning the
#: command with the placeholder filled
PLACEHOLDERS: dict[str, Callable[[Case, str], str]] = {"<run id>": _with_run_id}


def run_single(case: Case, text: str, command: docs.Command) -> None:
    """A single run: the files it names are written, small overrides appended; exit 0 and an objective line."""
    for placeholder, fill in PLACEHOLDERS.items():
        if placeholder in text:
            text = fill(case, text)
    tokens = shlex.split(text)
    no_outside_paths(case, tokens)
    args = hydra_args(tokens)
    prepare_data(case, args)
    full = " ".join([text, *map(shlex.quote, small_overrides(args))])
    proc = case.bash(full, TIMEOUT_RUN)
    expect_ok(proc)
    assert re.search(r"^objective \S+ = ", proc.stdout, re.M), proc.stdout


def run_sweep(case: Case, text: str, command: docs.Command) -> None:
    """A sweep (``-m``): small overrides and, for a hyperopt sweep, 3 trials; the sweep directory holds every job
    (grid) or the results of every trial (hyperopt)."""
    tokens = shlex.split(text)
    no_outside_paths(case, tokens)
    args = hydra_args(tokens)
    prepare_data(case, args)
    hyperopt = bool(args.get("tuner")) or args.get("hydra/sweeper") == "hyperopt"
    extra = small_overrides(args)
    trials = None
    if hyperopt:
        trials = SMALL_TRIALS
        if args.get("hydra.sweeper.n_trials") is None:
            extra.append(f"hydra.sweeper.n_trials={SMALL_TRIALS}")
        elif int(args["hydra.sweeper.n_trials"]) > SMALL_TRIALS:
            # the printed count (e.g. 100) is the real-size search; that the command runs is shown by 3 trials
            text = re.sub(r"(hydra\.sweeper\.n_trials=)\d+", rf"\g<1>{SMALL_TRIALS}", text)
        else:
            trials = int(args["hydra.sweeper.n_trials"])
    proc = case.bash(" ".join([text, *map(shlex.quote, extra)]), TIMEOUT_SWEEP)
    expect_ok(proc)
    sweeps = sorted(p for p in (case.cwd / ".qframe" / "multirun").glob("*/*") if p.is_dir())
    assert len(sweeps) == 1, f"expected one sweep directory under ./.qframe/multirun, found {sweeps}"
    if hyperopt:
        # a trial may fail at test size (a drawn L1/L2 too strong for a small market): the sweep copes, as documented
        results = yaml.safe_load((sweeps[0] / "optimization_results.yaml").read_text())
        assert results["completed"] >= 1 and results["completed"] + results["failed"] == trials, results
    else:
        grid = [len(sweep_values(v)) for k, v in args.items() if not k.startswith("hydra")]
        jobs = [p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit()]
        assert len(jobs) == max(1, math.prod(grid)), (grid, sorted(p.name for p in jobs))


#: trials of each stage of a pipeline (``tuner=pipeline``)
SMALL_STAGE_TRIALS = 2


def run_gpu_sweep(case: Case, text: str, command: docs.Command) -> None:
    """A sweep with ``hydra.sweeper.trial_gpus``: where this machine has too few GPUs, the one-line refusal (exit 2,
    before any trial); where it has enough, a sweep like any other."""
    from qframe.launch.devices import visible_devices

    args = hydra_args(shlex.split(text))
    needed = int(args["hydra.sweeper.trial_gpus"]) * int(args.get("hydra.sweeper.n_jobs", 1))
    if len(visible_devices()) >= needed:
        run_sweep(case, text, command)
        return
    proc = case.bash(text, TIMEOUT_RUN)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("qframe: error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "trial_gpus" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not list(case.cwd.glob(".qframe/multirun/*/*/sweep_state.json"))


def run_pipeline(case: Case, text: str, command: docs.Command) -> None:
    """A pipeline (``tuner=pipeline``): every stage 2 trials (a printed stage ``n_trials`` becomes 2), each model
    stage's model at test size (its ``overrides`` plus ``SMALL_MODEL``), a market the strategy's topk choices fit; the
    pipeline must finish every stage, and its global best be the best of the stages' bests."""
    tokens = shlex.split(text)
    no_outside_paths(case, tokens)
    args = hydra_args(tokens)
    conf = yaml.safe_load((ROOT / "conf" / "tuner" / "pipeline.yaml").read_text())
    stages = conf["hydra"]["sweeper"]["stages"]
    from qframe.core.registry import get_registry

    extra, topks = [], [5]
    for name, stage in stages.items():
        key = f"hydra.sweeper.stages.{name}.n_trials"
        if args.get(key) is None:
            extra.append(f"{key}={SMALL_STAGE_TRIALS}")
        text = re.sub(rf"({re.escape(key)}=)\d+", rf"\g<1>{SMALL_STAGE_TRIALS}", text)
        overrides = list(stage.get("overrides") or [])
        model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), None)
        if model in SMALL_MODEL:
            overrides += [f"{k}={v}" for k, v in SMALL_MODEL[model].items()]
            extra.append(f"hydra.sweeper.stages.{name}.overrides=[{','.join(json.dumps(o) for o in overrides)}]")
        for space in stage.get("spaces") or []:
            obj = get_registry().get("search_space", space).obj
            searched = str((obj() if callable(obj) else obj).get("strategy.topk", ""))
            topks += [int(n) for n in re.findall(r"\d+", searched)]
    # the model stages hold the small strategy; the strategy stage searches its own (its choices need the instruments)
    extra += [f"dataset.n_instruments={INSTRUMENTS_PER_TOPK * max(topks)}", "dataset.n_days=320", *SMALL_STRATEGY_ARGS]
    proc = case.bash(" ".join([text, *map(shlex.quote, extra)]), TIMEOUT_SWEEP)
    expect_ok(proc)
    sweeps = sorted(p for p in (case.cwd / ".qframe" / "multirun").glob("*/*") if p.is_dir())
    assert len(sweeps) == 1, f"expected one sweep directory under ./.qframe/multirun, found {sweeps}"
    results = yaml.safe_load((sweeps[0] / "pipeline_results.yaml").read_text())
    assert all(stage["status"] == "finished" for stage in results["stages"].values()), results
    assert results["global_best"]["value"] == max(s["best_value"] for s in results["stages"].values()), results


#: the small strategy as overrides
SMALL_STRATEGY_ARGS = [f"{k}={v}" for k, v in SMALL_STRATEGY.items()]


def run_from_run(case: Case, text: str, command: docs.Command) -> None:
    """``from_run=RUN`` (a single run or a sweep): first a small ridge run, on a market sized for the command's
    topk, which ``last`` (or its name) then names; the command as printed with that run's data sizes (the same data:
    from_run checks it) and the small strategy unless the command sets one, 3 trials for a hyperopt sweep; no model
    key (from_run refuses one: the source's model made the predictions). It must re-evaluate without a fit."""
    tokens = shlex.split(text)
    no_outside_paths(case, tokens)
    args = hydra_args(tokens)
    extra = small_overrides({**args, "model": "linear"})
    sizes = [o for o in extra if o.startswith("dataset.")]
    source = ["qframe", "model=linear", *sizes, "strategy.topk=5", "strategy.n_drop=1"]
    ref = args["from_run"]
    if ref != "last":
        source.append(f"run_name={ref}")
    expect_ok(case.bash(shlex.join(source), TIMEOUT_RUN), " (the run whose predictions from_run re-evaluates)")
    extra = [o for o in extra if o.startswith(("dataset.", "strategy."))]
    sweep = "-m" in tokens or "--multirun" in tokens
    if sweep and (args.get("tuner") or args.get("hydra/sweeper") == "hyperopt"):
        if args.get("hydra.sweeper.n_trials") is None:
            extra.append(f"hydra.sweeper.n_trials={SMALL_TRIALS}")
        else:
            text = re.sub(r"(hydra\.sweeper\.n_trials=)\d+", rf"\g<1>{SMALL_TRIALS}", text)
    proc = case.bash(" ".join([text, *map(shlex.quote, extra)]), TIMEOUT_SWEEP if sweep else TIMEOUT_RUN)
    expect_ok(proc)
    if not sweep:
        assert re.search(r"^predictions: of run [0-9a-f]{8} .*\(no fit\)$", proc.stdout, re.M), proc.stdout
        assert re.search(r"^objective \S+ = ", proc.stdout, re.M), proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_mlflow_ui(case: Case, text: str, command: docs.Command) -> None:
    """A server: a small (ridge) run first, so the store exists; then the command as printed with ``--port <free>``
    appended (its default, 5000, may be taken on a test machine); it must answer 200 and serve the run's
    experiment; then it is stopped (its process group: it starts uvicorn workers)."""
    with_small_run(case)
    port_m = re.search(r"--port[ =](\d+)", text)
    port = int(port_m.group(1)) if port_m else _free_port()
    full = text if port_m else f"{text} --port {port}"
    case.ran.append(full)
    log = case.tmp / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "-c", full], cwd=case.cwd, env=case.env, stdout=out, stderr=out, start_new_session=True
        )
    try:
        deadline = time.monotonic() + TIMEOUT_SERVER
        while True:
            if proc.poll() is not None:
                pytest.fail(f"`{full}` exited with status {proc.returncode}\n{_tail(log.read_text())}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"`{full}` did not answer in {TIMEOUT_SERVER} s\n{_tail(log.read_text())}")
            time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=100"
        with urllib.request.urlopen(url, timeout=30) as r:
            names = [e["name"] for e in json.load(r).get("experiments", [])]
        assert "qframe" in names, f"the UI does not serve the run's store: experiments {names}"
    finally:
        _kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.wait()


def run_cache(case: Case, text: str, command: docs.Command) -> None:
    """``qframe cache [list|clear ...]``: after a small (ridge) run, so there is a market and a feature panel
    cached, as printed; exit 0; a list names both, ``clear --older-than DAYS`` keeps these minutes-old entries,
    a plain ``clear`` empties the cache."""
    with_small_run(case)
    cache = case.cwd / ".qframe" / "cache"
    before = sorted(p.name for p in cache.rglob("*") if p.is_file())
    proc = case.bash(text, TIMEOUT_RUN)
    expect_ok(proc)
    after = sorted(p.name for p in cache.rglob("*") if p.is_file())
    words = shlex.split(text)[2:]
    if "clear" not in words:
        if "--json" in words:
            assert json.loads(proc.stdout), proc.stdout
        else:
            assert "market" in proc.stdout and "features" in proc.stdout, proc.stdout
    elif "--older-than" in words:
        assert after == before, f"clear --older-than removed minutes-old entries: {before} -> {after}"
    elif "--kind" not in words:
        assert not after, f"clear left {after}"


def run_data_check(case: Case, text: str, command: docs.Command) -> None:
    """``qframe data check dataset=...``: the files it names are written from the fixture; as printed, exit 0,
    the report's first line (or JSON with --json)."""
    tokens = shlex.split(text)
    no_outside_paths(case, tokens)
    prepare_data(case, hydra_args([t for t in tokens[2:] if t != "--json"]))  # hydra_args skips "check"
    proc = case.bash(text, TIMEOUT_RUN)
    expect_ok(proc)
    if "--json" in tokens:
        assert json.loads(proc.stdout)["instruments"] > 0, proc.stdout
    else:
        assert re.search(r"^data: \d+ instruments, \d+ days", proc.stdout, re.M), proc.stdout


def run_runs(case: Case, text: str, command: docs.Command) -> None:
    """``qframe runs ...``: after a small (ridge) run, so the store holds one run, as printed; exit 0; a listing
    shows it (or says no run matches its filter), ``show`` prints how to re-run it, a leaderboard ranks it."""
    with_small_run(case)
    proc = case.bash(text, TIMEOUT_RUN)
    expect_ok(proc)
    words = shlex.split(text)[2:]
    if words[:1] == ["show"]:
        assert "re-run it: qframe " in proc.stdout, proc.stdout
    elif words[:1] == ["leaderboard"]:
        assert "linear" in proc.stdout, proc.stdout
    elif words[:1] == ["report"]:
        assert "report.html" in proc.stdout and list(case.cwd.glob("qframe-reports/*/report.html")), proc.stdout
    else:
        assert "linear" in proc.stdout or "no runs match" in proc.stdout, proc.stdout


def check_error_transcript(case: Case, text: str, command: docs.Command) -> None:
    """A ``$ command`` with ``qframe: error: ...`` printed under it: as printed it exits 2 and prints exactly
    those lines on stderr."""
    proc = case.bash(text, TIMEOUT_RUN)
    assert proc.returncode == 2, f"`{text}` exited with {proc.returncode}, the docs say 2\n{_tail(proc.stderr)}"
    assert proc.stderr.rstrip("\n").splitlines() == list(command.output), (
        f"`{text}` printed on stderr:\n{proc.stderr}\nthe docs print:\n" + "\n".join(command.output)
    )


# ------------------------------------------------------------------------------------------------------- the rules


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: str  # a regex matched (re.fullmatch) against a part of a line (the whole line if whole_line)
    action: Callable[[Case, str, docs.Command], None]
    why: str
    whole_line: bool = False  # matched against the whole line, before it is cut at &&
    transcript: bool = False  # only for a "$ " line with printed output under it


RULES = [
    Rule(
        "set-up 1: install and run",
        r"python3 -m venv \.venv && (\.venv/bin/)?pip install .* && \.venv/bin/qframe",
        check_setup_install,
        "what CI's own set-up does (installing takes minutes): check the text; the run is the default-run case",
        whole_line=True,
    ),
    Rule(
        "set-up 2: the test command",
        r"python3 -m venv \.venv && .*pytest.*",
        check_test_command,
        "CI runs it (.ci/run), and it would run this file again: check it equals .ci/run's command",
        whole_line=True,
    ),
    Rule(
        "transcript: an error",
        r"qframe( .*)?",
        check_error_transcript,
        "as printed: exit 2 and exactly the printed lines on stderr",
        transcript=True,
    ),
    Rule(
        "activate the venv",
        r"(\.|source) \.venv/bin/activate",
        check_activate,
        "changes only the user's shell (every case has the venv first on PATH): check qframe is then the venv's",
    ),
    Rule("cd", r"cd( \S+)?", do_cd, "later parts of the line run in that directory"),
    Rule(
        "pip install an extra",
        r"(\.venv/bin/)?pip install( -q)? -c constraints\.txt( -e)? '(\.|qframe)\[[\w,-]+\]'",
        check_extras,
        "would change the shared venv: check the extras and that the CI install put their pinned packages here",
    ),
    Rule(
        "pip install the example plugin",
        r"pip install ((\./)?examples/qframe-example-plugin/?|qframe-example-plugin)",
        install_example_plugin,
        "into a throwaway --target directory put on PYTHONPATH for the rest of the line",
    ),
    Rule("qframe: the default run", r"qframe", run_default, "full size, as printed, once (see test_sample_output)"),
    Rule(
        "qframe: help, version, config",
        r"qframe (--help|-h|--version|--cfg (job|hydra|all))",
        run_info,
        "as printed: exit 0, --help lists every config group and option, --cfg prints YAML",
    ),
    Rule("qframe plugins", r"qframe plugins( .*)?", run_plugins, "as printed: exit 0, lists the plugins"),
    Rule(
        "qframe data check",
        r"qframe data check( .*)?",
        run_data_check,
        "the files it names are written from the fixture; as printed: exit 0, the report (or JSON)",
    ),
    Rule(
        "qframe cache",
        r"qframe cache( .*)?",
        run_cache,
        "after a small run (so something is cached), as printed: exit 0; list names the entries, clear clears",
    ),
    Rule(
        "qframe runs",
        r"qframe runs( .*)?",
        run_runs,
        "after a small run (so the store holds a run), as printed: exit 0; it lists, shows or ranks that run",
    ),
    Rule(
        "qframe: from_run",
        r"qframe (.* )?from_run=\S+( .*)?",
        run_from_run,
        "after a small ridge run (its market sized for the command's topk), the same data sizes: it re-evaluates",
    ),
    Rule(
        "qframe: a pipeline",
        r"qframe (.* )?(-m|--multirun) (.* )?tuner=pipeline( .*)?",
        run_pipeline,
        "each stage 2 trials at test size (its model small); every stage finishes, the global best is the stages' best",
    ),
    Rule(
        "qframe: a sweep with GPUs per trial",
        r"qframe (.* )?(-m|--multirun) (.* )?hydra\.sweeper\.trial_gpus=\d+( .*)?",
        run_gpu_sweep,
        "without enough GPUs (this machine): the one-line refusal, exit 2, no sweep dir; with them: a sweep",
    ),
    Rule(
        "qframe: a sweep",
        r"qframe (.* )?(-m|--multirun)( .*)?",
        run_sweep,
        "small overrides, 3 hyperopt trials (a printed n_trials above 3 becomes 3); the sweep dir has every job",
    ),
    Rule(
        "qframe: a single run",
        r"qframe( .*)?",
        run_single,
        "the files it names are written from the fixture; small overrides appended where the command sets none",
    ),
    Rule(
        "mlflow ui",
        r"mlflow (ui|server)( .*)?",
        run_mlflow_ui,
        "a server: after a small run, as printed plus --port <free port>; it must answer 200, then it is stopped",
    ),
]


def rule_for(text: str, command: docs.Command, whole_line: bool = False) -> Rule | None:
    """The first rule for ``text``; a part with a shell operator (``|``, ``;``, ``>`` ...) has none."""
    bare = text
    for placeholder in PLACEHOLDERS:
        bare = bare.replace(placeholder, "PLACEHOLDER")
    if not whole_line and docs.scan(bare)[2]:
        return None
    for rule in RULES:
        if rule.whole_line == whole_line and rule.transcript == bool(command.output):
            if re.fullmatch(rule.pattern, text):
                return rule
    return None


def _installs_example(text: str) -> bool:
    return any(
        re.fullmatch(r"pip install ((\./)?examples/qframe-example-plugin/?|qframe-example-plugin)", p)
        for p in docs.split_and(text)
    )


def with_example_plugin(command: docs.Command) -> bool:
    """The example plugin is installed for a command when an earlier line of its block installed it, or when
    the command names one of its items and an earlier command of the same document installed it."""
    if any(_installs_example(t) for t in command.block_before):
        return True
    names_item = any(re.search(rf"\b{re.escape(item)}\b", command.text) for item in EXAMPLE_ITEMS)
    return names_item and any(_installs_example(t) for t in command.doc_before)


def _collect() -> list[tuple[docs.Command, bool]]:
    seen: dict[tuple, tuple[docs.Command, bool]] = {}
    for command in docs.documented_commands():
        plugged = with_example_plugin(command)
        key = (command.text, command.output, plugged)
        if key in seen:
            first = seen[key][0]
            seen[key] = (docs.Command(**{**first.__dict__, "also": (*first.also, command.where)}), plugged)
        else:
            seen[key] = (command, plugged)
    return list(seen.values())


COMMANDS = _collect()


def _id(item: tuple[docs.Command, bool]) -> str:
    command, plugged = item
    return command.text + (" [example plugin installed]" if plugged else "")


# ------------------------------------------------------------------------------------------------------------ tests


@pytest.fixture(scope="session")
def small_run_workdir(tmp_path_factory) -> Path:
    """The ``.qframe`` a small (ridge) run leaves in a fresh directory, made once: the commands that need a store
    or a cache to look at (``mlflow ui``, ``qframe cache``) start from a copy of it."""
    case = Case(tmp_path_factory.mktemp("readme-small-run"))
    first = " ".join(["qframe", "model=linear", *small_overrides({"model": "linear"})])
    expect_ok(case.bash(first, TIMEOUT_RUN), " (the small run whose work dir other commands look at)")
    return case.cwd / ".qframe"


def with_small_run(case: Case) -> None:
    """A copy of :func:`small_run_workdir` as the case's ``./.qframe``."""
    shutil.copytree(case.request.getfixturevalue("small_run_workdir"), case.cwd / ".qframe")


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    """``qframe`` as printed (no arguments: 300 instruments x 2500 days), once, in a fresh directory."""
    case = Case(tmp_path_factory.mktemp("readme-default"))
    start = time.monotonic()
    proc = case.bash("qframe", TIMEOUT_DEFAULT)
    return {"proc": proc, "cwd": case.cwd, "seconds": time.monotonic() - start}


def steps_for(command: docs.Command) -> list[tuple[Rule, str]] | None:
    """``(rule, part)`` for each part of the command line in order; None when a part has no rule."""
    rule = rule_for(command.text, command, whole_line=True)
    if rule:
        return [(rule, command.text)]
    steps = []
    for part in docs.split_and(command.text):
        rule = rule_for(part, command)
        if rule is None:
            return None
        steps.append((rule, part))
    return steps


#: the xdist group (tests/conftest.py) of a case whose action reaches a session fixture through
#: ``request.getfixturevalue``, which conftest's rule cannot see: such cases run on one worker, so the fixture is
#: made once (the full-size default run is the suite's longest process). The names are conftest's, so a test taking
#: the fixture as an argument (test_sample_output) joins the same group
SHARED_RUN_GROUPS = {run_default: "session:default_run"} | dict.fromkeys(
    (run_runs, run_cache, run_mlflow_ui), "session:small_run_workdir"
)


#: the cases of a minute or so on 2 cores, which start before the others (``pytest.mark.long``, tests/conftest.py):
#: the full-size default run, and a rolling study (a fit per window, on the larger market LightGBM needs)
LONG_CASE = re.compile(r"^qframe$|\btrainer=rolling\b")


def _param(item: tuple[docs.Command, bool]):
    command, plugged = item
    actions = [rule.action for rule, _ in steps_for(command) or []]
    if plugged and run_default in actions:
        actions.remove(run_default)  # with the plugin on PYTHONPATH, run_default runs qframe itself
    groups = {SHARED_RUN_GROUPS[a] for a in actions if a in SHARED_RUN_GROUPS}
    marks = [pytest.mark.xdist_group(g) for g in sorted(groups)[:1]]
    if any(LONG_CASE.search(part) for part in docs.split_and(command.text)):
        marks.append(pytest.mark.long)
    return pytest.param(item, marks=marks, id=_id(item))


@pytest.mark.parametrize("item", [_param(c) for c in COMMANDS])
def test_documented_command(item, tmp_path, request):
    command, plugged = item
    where = ", ".join([command.where, *command.also])
    case = Case(tmp_path, request)
    steps = steps_for(command)
    if steps is None:
        pytest.fail(f"README command not covered by tests/test_readme.py: {command.text}  ({where})")
    if plugged:
        install_example_plugin(case, f"pip install {EXAMPLE.relative_to(ROOT)}", command)
    for rule, part in steps:
        try:
            rule.action(case, part, command)
        except (AssertionError, pytest.fail.Exception) as e:
            ran = "\n".join(f"  $ {c}" for c in case.ran)
            raise AssertionError(f"{where}: [{rule.name}] {part}\nran (cwd {case.cwd}):\n{ran}\n{e}") from None


def test_every_block_language_is_known():
    """A new block language (```powershell, ```fish ...) fails here rather than being skipped silently."""
    ignored = {"python", "py", "toml", "yaml", "yml", "json", "ini", "cfg", "diff"}
    for path in docs.DOC_FILES:
        for fence in docs.fences(path):
            known = fence.lang in docs.SHELL_LANGS | docs.TRANSCRIPT_LANGS | ignored
            assert known, f"{docs.rel(path)}:{fence.line}: ```{fence.lang} block: tests/test_readme.py knows no rule"


def test_commands_are_found():
    files = {c.where.split(":")[0] for c, _ in COMMANDS} | {w.split(":")[0] for c, _ in COMMANDS for w in c.also}
    assert {"README.md", "docs/sweeps.md", "docs/torch.md", "docs/plugins.md", "docs/tracking.md"} <= files, files
    assert any(c.output for c, _ in COMMANDS), "the README's error example ($ qframe ... / qframe: error: ...)"


#: what differs from run to run in a summary line: stage times ("9.6 s", "1 min 14 s")
DURATION = r"(?:\d+ (?:h|min) )*\d+(?:\.\d+)? (?:ms|s)\b"


def sample_line_pattern(line: str, readme_dir: str | None, cwd: Path) -> str:
    """A README sample line as a regex: the objective and notes verbatim; stage times any time; a run id
    shortened with ``...`` any id; the README's example directory the run's working directory."""
    alternatives = [DURATION, r"[0-9a-f]+\.\.\."] + ([re.escape(readme_dir)] if readme_dir else [])
    pieces = re.split(f"({'|'.join(alternatives)})", line)
    out = []
    for k, piece in enumerate(pieces):
        if k % 2 == 0:
            out.append(re.escape(piece))
        elif readme_dir and piece == readme_dir:
            out.append(re.escape(str(cwd)))
        elif piece.endswith("..."):
            out.append("[0-9a-f]+")
        else:
            out.append(DURATION)
    return "".join(out)


def test_sample_output(default_run):
    """The README's sample output is what the default run prints: the IC and risk tables number for number (the
    box layout may differ), the objective line exactly, the MLflow lines with the run id and directory filled."""
    fence = docs.sample_output()
    assert fence is not None, "README.md has no sample-output block with the 'Signal (test segment)' table"
    proc, cwd = default_run["proc"], default_run["cwd"]
    expect_ok(proc)
    printed, shown = proc.stdout.splitlines(), list(fence.lines)
    actual_tables, readme_tables = docs.parse_tables(printed), docs.parse_tables(shown)
    summary = "\n".join(line for line in printed if line.strip())
    problems = []
    for title, table in readme_tables.items():
        got = actual_tables.get(title)
        if got is None:
            problems.append(f"no table titled {title!r} (printed: {sorted(actual_tables)})")
            continue
        if got["header"] != table["header"]:
            problems.append(f"{title}: columns {got['header']}, README {table['header']}")
        for key, row in table["rows"].items():
            have = got["rows"].get(key)
            same = have is not None and len(have) == len(row)
            same = same and all(
                a == b or (docs.is_number(a) and docs.is_number(b) and float(a) == float(b))
                for a, b in zip(have, row, strict=True)
            )
            if not same:
                problems.append(f"{title}: row {key}: printed {have}, README {row}")
        for key in set(got["rows"]) - set(table["rows"]):
            problems.append(f"{title}: printed row {got['rows'][key]} is not in the README")
    in_tables = docs.table_lines(shown)
    readme_dir = re.search(r"sqlite:///(/\S*?)/\.qframe/mlflow\.db", "\n".join(shown))
    for i, line in enumerate(shown):
        if i in in_tables or not line.strip():
            continue
        pattern = sample_line_pattern(line.strip(), readme_dir.group(1) if readme_dir else None, cwd)
        if not any(re.fullmatch(pattern, p.strip()) for p in printed):
            problems.append(f"README line not printed: {line.strip()}")
    assert not problems, "\n".join(problems) + f"\n--- the default run printed ---\n{summary}"
