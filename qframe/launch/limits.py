"""A memory limit per trial, enforced by the operating system in each forked trial process.

Two mechanisms, the better one that this process can use:

* **cgroup v2** (Linux, a delegated cgroup: e.g. ``systemd-run --user --scope -p Delegate=yes qframe -m ...``):
  each trial process joins a cgroup of its own whose ``memory.max`` is the limit. The kernel counts what the trial
  really uses (resident memory, page cache it dirties) and OOM-kills only that trial's cgroup when it goes over;
  ``memory.events`` then says it was the limit. Used when this process's cgroup has the memory controller and this
  process is alone in it (it moves itself into a leaf ``qframe-sweep`` so that trial cgroups can be its siblings).
* **address-space limit** (``RLIMIT_AS``, every POSIX system): the trial may map at most the limit beyond what it
  inherited from the sweep process at the fork (the imported stack, the shared inputs: mapped, copy-on-write, not
  new). An allocation past it fails: Python raises ``MemoryError``, which the record turns into "memory limit
  exceeded". Virtual, not resident: thread stacks and malloc arenas count, so it is set generously; a CUDA process
  maps far more address space than it uses, so on a machine with GPUs no address-space limit is set.

The default (``auto``) is :data:`DEFAULT_FRACTION` of this machine's memory (or of the memory limit this process
itself runs under, whichever is less) divided by the trials running at once, so that the slots together leave the
sweep process and the machine room.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: the share of the machine's memory that the trials running at once may use together by default
DEFAULT_FRACTION = 0.75
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
#: failures of an allocation, as a trial's error message starts or reads (Python, C++, torch, numpy)
_ALLOCATION_FAILURES = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "can't allocate memory")


def parse_size(value: Any, key: str = "hydra.sweeper.trial_memory") -> int:
    """Bytes of ``value``: a number of bytes or a size such as ``4GB``, ``512MiB``, ``1.5G`` (binary units)."""
    from qframe.core.errors import ConfigError

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        size = int(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(I?B)?\s*", str(value).upper())
        if match is None:
            raise ConfigError(f"{key}={value!r} is not a size: give e.g. 4GB, 512MB, auto or null (no limit)")
        size = int(float(match.group(1)) * _UNITS[match.group(2)])
    if size <= 0:
        raise ConfigError(f"{key} must be a positive size (e.g. 4GB), auto or null (no limit), got {value!r}")
    return size


def format_size(size: int) -> str:
    """``size`` bytes in words: ``4 GB``, ``200 MB`` (binary units, as :func:`parse_size` reads them)."""
    for unit, factor in (("TB", 1024**4), ("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor:
            amount = size / factor
            return f"{amount:.0f} {unit}" if amount >= 10 or amount == int(amount) else f"{amount:.1f} {unit}"
    return f"{size} B"


def machine_memory() -> int:
    """Bytes of memory this process can have: the machine's, or less where its own cgroup limits it."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    own = _own_cgroup_v2()
    files = [own / "memory.max"] if own is not None else []
    files.append(Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))  # cgroup v1
    for file in files:
        text = _read(file).strip()
        if text.isdigit():
            total = min(total, int(text))
    return total


def resolve_memory(value: Any, slots: int) -> tuple[int | None, str]:
    """(bytes per trial or None: no limit, how that was decided) for ``hydra.sweeper.trial_memory=value``."""
    if value is None or str(value).strip().lower() in ("none", "null", "off", "false", "0"):
        return None, "no memory limit (hydra.sweeper.trial_memory=null)"
    if str(value).strip().lower() == "auto":
        total = machine_memory()
        size = int(DEFAULT_FRACTION * total / max(1, int(slots)))
        how = f"the default: {DEFAULT_FRACTION:.0%} of {format_size(total)} / {slots} at a time"
        return size, how
    return parse_size(value), "set by hydra.sweeper.trial_memory"


# ---------------------------------------------------------------------------------------------- cgroup v2
def _cgroup2_mount() -> Path | None:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            return Path(left.split()[4])
    return None


def _own_cgroup_v2() -> Path | None:
    """This process's cgroup v2 directory, None where there is none (no unified hierarchy)."""
    mount = _cgroup2_mount()
    if mount is None:
        return None
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            return mount / line[3:].lstrip("/")
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, text: str) -> bool:
    try:
        path.write_text(text)
        return True
    except OSError:
        return False


class CgroupTrials:
    """Trial cgroups beside this (sweep) process's own leaf, under a delegated cgroup v2 with the memory controller."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.pending: list[Path] = []  # trial cgroups to remove once their processes are gone

    @classmethod
    def open(cls, base: Path | None = None) -> tuple[CgroupTrials | None, str]:
        """The trial cgroups of this process, or (None, why not)."""
        base = base if base is not None else _own_cgroup_v2()
        if base is None:
            return None, "no cgroup v2 hierarchy"
        if "memory" not in _read(base / "cgroup.controllers").split():
            return None, "cgroup v2 without the memory controller for this process"
        if not os.access(base, os.W_OK):
            return None, "this process's cgroup is not delegated to it"
        if "memory" not in _read(base / "cgroup.subtree_control").split():
            procs = _read(base / "cgroup.procs").split()
            if procs != [str(os.getpid())]:
                return None, "other processes share this process's cgroup"
            leaf = base / "qframe-sweep"
            try:
                leaf.mkdir(exist_ok=True)
            except OSError:
                return None, "cannot create cgroups in this process's cgroup"
            if not _write(leaf / "cgroup.procs", str(os.getpid())):
                return None, "cannot move this process into a leaf cgroup"
            if not _write(base / "cgroup.subtree_control", "+memory"):
                _write(base / "cgroup.procs", str(os.getpid()))
                return None, "cannot enable the memory controller for trial cgroups"
        return cls(base), "cgroup v2"

    def create(self, idx: int, limit: int) -> Path | None:
        """A new cgroup for job ``idx`` limited to ``limit`` bytes (swap none); None if it cannot be made."""
        self.cleanup()
        path = self.base / f"qframe-trial-{os.getpid()}-{idx}"
        try:
            path.mkdir(exist_ok=True)
        except OSError:
            return None
        _write(path / "memory.swap.max", "0")
        _write(path / "memory.oom.group", "1")  # the trial and what it started are killed together
        if not _write(path / "memory.max", str(limit)):
            self._remove(path)
            return None
        return path

    @staticmethod
    def oom_killed(path: Path) -> bool:
        """Whether the kernel killed a process of cgroup ``path`` for its memory limit."""
        for line in _read(path / "memory.events").splitlines():
            name, _, count = line.partition(" ")
            if name == "oom_kill" and count.strip().isdigit() and int(count) > 0:
                return True
        return False

    def release(self, path: Path) -> None:
        """Remove ``path`` now, or once its processes are gone."""
        self.pending.append(path)
        self.cleanup()

    def cleanup(self) -> None:
        self.pending = [p for p in self.pending if not self._remove(p)]

    @staticmethod
    def _remove(path: Path) -> bool:
        try:
            path.rmdir()
        except FileNotFoundError:
            return True
        except OSError:
            return False  # still has a process (exiting)
        return True


# ----------------------------------------------------------------------------------------------- per trial
@dataclass
class TrialLimits:
    """The memory limit of each trial process and how it is enforced; used by the fork launcher around each fork."""

    memory: int | None  # bytes per trial, None: no limit
    how: str  # how the size was decided (for the start line)
    cgroups: CgroupTrials | None = None
    mechanism: str = "none"  # "cgroup v2", "address-space limit" or "none"
    why_not_cgroup: str = ""
    cgroup_of: dict[int, Path] = field(default_factory=dict)

    @classmethod
    def create(cls, value: Any, slots: int, gpus: bool = False) -> TrialLimits:
        """The limits for ``hydra.sweeper.trial_memory=value`` with ``slots`` trials at a time (``gpus``: the trials
        may use CUDA, which an address-space limit would break: only a cgroup limits them)."""
        memory, how = resolve_memory(value, slots)
        if memory is None:
            return cls(None, how)
        cgroups, why = CgroupTrials.open()
        if cgroups is not None:
            return cls(memory, how, cgroups, "cgroup v2")
        if gpus:
            return cls(None, how, mechanism="none", why_not_cgroup=why)
        return cls(memory, how, None, "address-space limit", why)

    @property
    def label(self) -> str:
        """The limit as the record says it: ``4 GB``."""
        return format_size(self.memory) if self.memory else "none"

    def describe(self, slots: int) -> str:
        """The one line a sweep prints at its start about its trials' memory."""
        if self.memory is None:
            if self.why_not_cgroup:  # GPUs without cgroups
                return (
                    f"no memory limit per trial: {self.why_not_cgroup}, and on a machine with GPUs an address-space "
                    "limit would break CUDA (run the sweep in a delegated cgroup v2 to have one)"
                )
            return self.how
        enforced = (
            "enforced by its cgroup v2"
            if self.mechanism == "cgroup v2"
            else f"enforced as an address-space limit beyond what a trial inherits: {self.why_not_cgroup}"
        )
        word = "trial" if slots == 1 else "trials"
        return (
            f"each of the {slots} {word} at a time may use up to {self.label} of memory ({self.how}; {enforced}); "
            "change it with hydra.sweeper.trial_memory (null: no limit)"
        )

    # in the sweep process, before forking job idx
    def before_fork(self, idx: int) -> None:
        if self.memory is not None and self.cgroups is not None:
            path = self.cgroups.create(idx, self.memory)
            if path is not None:
                self.cgroup_of[idx] = path

    # in the forked child, first thing
    def enter(self, idx: int) -> None:
        """Put this (trial) process under the limit."""
        if self.memory is None:
            return
        path = self.cgroup_of.get(idx)
        if path is not None and _write(path / "cgroup.procs", str(os.getpid())):
            return
        import resource

        # what this process maps now is the sweep's, inherited copy-on-write: the limit is on what it maps beyond
        inherited = _mapped_bytes()
        limit = inherited + self.memory
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        except (ValueError, OSError):
            pass

    # in the sweep process, once job idx has ended
    def explain(self, idx: int, error: str | None) -> str | None:
        """The reason job ``idx`` failed, "memory limit exceeded (4 GB): ..." where the limit is why; ``error``
        (or None for a job that succeeded) otherwise. Releases the job's cgroup."""
        path = self.cgroup_of.pop(idx, None)
        exceeded = False
        if path is not None:
            exceeded = self.cgroups.oom_killed(path)
            self.cgroups.release(path)
        elif self.memory is not None and error is not None:
            exceeded = any(marker in error for marker in _ALLOCATION_FAILURES)
        if error is None or not exceeded:
            return error
        return f"memory limit exceeded ({self.label}): {error}"

    def close(self) -> None:
        if self.cgroups is not None:
            self.cgroups.cleanup()


def _mapped_bytes() -> int:
    """Bytes of address space this process maps now (``VmSize``)."""
    for line in _read(Path("/proc/self/status")).splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    except (ImportError, OSError):
        return 0
