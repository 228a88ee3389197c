"""Helpers for ``tests/test_readme.py``: the commands printed in README.md and docs/*.md, and the files they name.

Parsing only (no processes): fenced code blocks, their command lines (``&&`` chains, trailing ``# comments``,
``$ `` prompts, printed output under a prompt), README's inline command spans, the README's sample-output tables;
and writers for the data files a documented command reads (from ``tests/fixtures/qlib_small``).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "qlib_small"
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: fenced blocks whose every line is a shell command (a leading "$ " prompt is dropped)
SHELL_LANGS = {"bash", "sh", "shell", "zsh"}
#: fenced blocks where only "$ " lines are commands and the lines under one are its printed output
TRANSCRIPT_LANGS = {"", "console", "shell-session", "text"}
#: inline `spans` of README.md that are commands: a command word, a space, and more
INLINE_COMMAND = re.compile(r"^(qframe|mlflow|python3?|\.venv/bin/\S+|\.|source)\s+\S|^pip3? install\s+\S")


@dataclass(frozen=True)
class Fence:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    text: str  # the command as printed, without prompt and trailing comment
    where: str  # README.md:17
    origin: str  # "block" or "inline"
    output: tuple[str, ...] = ()  # what the docs print under a "$ " prompt line
    block_before: tuple[str, ...] = ()  # earlier commands of the same block
    doc_before: tuple[str, ...] = ()  # earlier commands of the same document
    also: tuple[str, ...] = field(default=(), compare=False)  # other places that print the same command


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def fences(path: Path) -> list[Fence]:
    """The fenced code blocks (``` or ~~~, any length) of a Markdown file."""
    out: list[Fence] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^ {0,3}(`{3,}|~{3,})\s*([\w+.-]*)", lines[i])
        if not m:
            i += 1
            continue
        mark, lang, start, body = m.group(1), m.group(2).lower(), i + 1, []
        i += 1
        while i < len(lines) and not re.match(rf"^ {{0,3}}{re.escape(mark[0])}{{{len(mark)},}}\s*$", lines[i]):
            body.append(lines[i])
            i += 1
        out.append(Fence(path, start, lang, tuple(body)))
        i += 1
    return out


def prose(path: Path) -> str:
    """The Markdown text outside fenced blocks (fence lines blanked, so line numbers stay)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    inside = set()
    for f in fences(path):
        inside.update(range(f.line - 1, f.line + len(f.lines) + 1))
    return "\n".join("" if i in inside else line for i, line in enumerate(lines))


def _unquoted(line: str):
    """(index, character) of every character of ``line`` outside quotes and backslash escapes."""
    quote, i = None, 0
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 2
                continue
            if c == quote:
                quote = None
        elif c == "\\":
            i += 2
            continue
        elif c in "'\"":
            quote = c
        else:
            yield i, c
        i += 1


def scan(line: str) -> tuple[str, str, list[str]]:
    """Split ``line`` as a POSIX shell reads it: (command, trailing comment, operators outside quotes).

    A ``#`` starts a comment at the start of a word outside quotes; operators are ``&&``, ``||``, ``|``, ``;``,
    ``&``, ``<``, ``>`` found outside quotes (``&&`` is also where :func:`split_and` cuts).
    """
    ops: list[str] = []
    skip = -1
    for i, c in _unquoted(line):
        if i <= skip:
            continue
        if c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i:], ops
        if c in "&|;<>":
            two = line[i : i + 2]
            ops.append(two if two in ("&&", "||", ">>") else c)
            skip = i + len(ops[-1]) - 1
    return line.rstrip(), "", ops


def split_and(command: str) -> list[str]:
    """The parts of an ``a && b && c`` chain (cut outside quotes)."""
    parts, start, skip = [], 0, -1
    for i, _ in _unquoted(command):
        if i > skip and command.startswith("&&", i):
            parts.append(command[start:i].strip())
            start, skip = i + 2, i + 1
    parts.append(command[start:].strip())
    return parts


def _logical_lines(lines: tuple[str, ...]) -> list[tuple[int, str]]:
    """(offset, line) with backslash-continued lines joined."""
    out, buf, first = [], "", None
    for k, line in enumerate(lines):
        if first is None:
            first = k
        if line.endswith("\\") and not line.endswith("\\\\"):
            buf += line[:-1] + " "
            continue
        out.append((first, buf + line))
        buf, first = "", None
    if buf:
        out.append((first, buf))
    return out


def block_commands(fence: Fence) -> list[tuple[int, str, tuple[str, ...]]]:
    """(line number, command, printed output) for each command line of a shell or transcript block."""
    if fence.lang in SHELL_LANGS:
        out = []
        for k, line in _logical_lines(fence.lines):
            text = line.strip()
            text = text[2:] if text.startswith("$ ") else text
            command = scan(text)[0].strip()
            if command:
                out.append((fence.line + 1 + k, command, ()))
        return out
    if fence.lang in TRANSCRIPT_LANGS:
        out, current = [], None
        for k, line in _logical_lines(fence.lines):
            if line.startswith("$ "):
                if current:
                    out.append(current)
                current = (fence.line + 1 + k, scan(line[2:])[0].strip(), [])
            elif current is not None:
                if line.strip():
                    current[2].append(line)
                else:
                    out.append(current)
                    current = None
        if current:
            out.append(current)
        return [(n, c, tuple(o)) for n, c, o in out]
    return []


def inline_commands(path: Path) -> list[tuple[int, str]]:
    """(line number, command) for each inline code span of ``path`` that is a command."""
    text = prose(path)
    out = []
    for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
        span = " ".join(m.group(1).split())
        if INLINE_COMMAND.match(span):
            out.append((text.count("\n", 0, m.start()) + 1, span))
    return out


def documented_commands() -> list[Command]:
    """Every command of the shell and transcript blocks of README.md and docs/*.md, and README's inline ones;
    a command printed in several places (same text, same printed output, same preceding plugin install) once."""
    found: list[Command] = []
    for path in DOC_FILES:
        items: list[tuple[int, str, tuple[str, ...], str, int]] = []
        for b, fence in enumerate(fences(path)):
            items += [(n, c, o, "block", b) for n, c, o in block_commands(fence)]
        if path.name == "README.md":
            items += [(n, c, (), "inline", -1 - n) for n, c in inline_commands(path)]
        items.sort(key=lambda item: item[0])
        doc_before: list[str] = []
        by_block: dict[int, list[str]] = {}
        for n, text, output, origin, b in items:
            block_before = by_block.setdefault(b, [])
            found.append(Command(text, f"{rel(path)}:{n}", origin, output, tuple(block_before), tuple(doc_before)))
            block_before.append(text)
            doc_before.append(text)
    return found


def sample_output(path: Path = ROOT / "README.md") -> Fence | None:
    """The README's plain block that shows a run's summary (the one with the ``Signal (test segment)`` table)."""
    for fence in fences(path):
        if fence.lang in ("", "text") and any(line.startswith("Signal (test segment)") for line in fence.lines):
            return fence
    return None


# ---------------------------------------------------------------------------------------------------- summary tables

_BORDER = re.compile(r"^[\s\u2500-\u257f+=-]*$")
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^[-+]?(nan|inf)$")


def _cells(line: str) -> list[str]:
    if re.search(r"[┃│|]", line):
        return [c.strip() for c in re.split(r"[┃│|]", line) if c.strip()]
    return [c.strip() for c in re.split(r"\s{2,}", line.strip()) if c.strip()]


def is_number(cell: str) -> bool:
    return bool(_NUMBER.match(cell.strip().lower()))


def parse_tables(lines: list[str]) -> dict[str, dict]:
    """``{title: {"header": [...], "rows": {key: [cells]}}}`` of the summary tables in printed output.

    A table is a title line, a header line (no numeric cell) and rows (at least one numeric cell); box-drawing
    borders are skipped. A row's key is its first cell when the header's first column is not numeric, else its
    number. Numbers are kept as printed.
    """
    tables: dict[str, dict] = {}
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        nxt = [j for j in range(i + 1, min(i + 3, len(lines))) if not _BORDER.match(lines[j])]
        if (
            line
            and not _BORDER.match(line)
            and not re.search(r"[┃│|]", line)
            and nxt
            and re.search(r"[┃│|]", lines[nxt[0]])
        ):
            header = _cells(lines[nxt[0]])
            rows: dict[str, list[str]] = {}
            j = nxt[0] + 1
            while j < len(lines):
                if _BORDER.match(lines[j]):
                    j += 1
                    continue
                cells = _cells(lines[j])
                if not re.search(r"[┃│|]", lines[j]) or not any(is_number(c) for c in cells):
                    break
                rows[str(len(rows)) if is_number(cells[0]) else cells[0]] = cells
                j += 1
            if header and rows:
                tables[line.strip()] = {"header": header, "rows": rows}
                i = j
                continue
        i += 1
    return tables


def table_lines(lines: list[str]) -> set[int]:
    """Indexes of lines that belong to a parsed table (title, borders, header, rows)."""
    out: set[int] = set()
    tables = parse_tables(lines)
    for i, line in enumerate(lines):
        if line.strip() in tables:
            out.add(i)
            j = i + 1
            while j < len(lines) and (_BORDER.match(lines[j]) or re.search(r"[┃│|]", lines[j])):
                out.add(j)
                j += 1
    return out


# ------------------------------------------------------------------------------------------------------- data files


def _write_table(df, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name.lower()
    if name.endswith(".parquet") or name.endswith(".pq"):
        df.to_parquet(path, index=False)
    elif name.endswith(".tsv"):
        df.to_csv(path, sep="\t", index=False, date_format="%Y-%m-%d")
    elif name.endswith(".csv"):
        df.to_csv(path, index=False, date_format="%Y-%m-%d")
    else:
        raise ValueError(f"{path}: the test writes .csv, .tsv or .parquet tables only")


def write_prices(path: Path, columns: dict[str, str], wide: bool = False) -> None:
    """The fixture market (40 instruments x 320 days) as the long table (or wide closes) a command names,
    with the fields renamed as the command maps them (``dataset.columns.<field>=<column>``)."""
    import pandas as pd

    df = pd.read_parquet(FIXTURE / "ohlcv.parquet")
    if wide:
        df = df.pivot(index="date", columns="instrument", values="close").reset_index()
        df = df.rename(columns={"date": columns.get("date", "date")})
    else:
        df = df.rename(columns=columns)
    _write_table(df, path)


def write_benchmark(path: Path, date_column: str = "date", value_column: str = "close") -> None:
    import pandas as pd

    df = pd.read_parquet(FIXTURE / "benchmark.parquet").rename(columns={"date": date_column, "close": value_column})
    _write_table(df, path)


def write_universe(path: Path, market: str = "csi300") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURE / "qlib_bin" / "instruments" / f"{market}.txt", path)


def write_qlib_dir(path: Path) -> None:
    """The fixture market in Qlib's binary layout (markets ``all`` and ``csi300``, benchmark ``SH000300``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(FIXTURE / "qlib_bin", path)


def qlib_markets() -> list[str]:
    return sorted(p.stem for p in (FIXTURE / "qlib_bin" / "instruments").glob("*.txt"))
