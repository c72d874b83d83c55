"""Generate student notebooks (``exercises/``) from instructor notebooks (``solutions/``).

The markup is nbgrader's, so a teacher can also run nbgrader on ``solutions/``:

* the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` (markers included) become a
  stub, indented like the BEGIN line: ``# YOUR CODE HERE`` / ``raise NotImplementedError()``
  in code cells, ``YOUR ANSWER HERE`` in markdown cells;
* an answer cell (``nbgrader.solution`` true) without markers becomes the stub as a whole
  (unless it already holds the stub, so that generating twice changes nothing);
* the lines from ``### BEGIN HIDDEN TESTS`` to ``### END HIDDEN TESTS`` are removed;
* outputs and execution counts are cleared; cell metadata (nbgrader's included) is kept;
* cells are locked the way nbgrader's release locks them: answer cells cannot be deleted
  (``deletable: false``), test cells and other read-only cells can be neither deleted nor
  edited (``deletable: false``, ``editable: false``); graded, answer and read-only cells carry
  nbgrader's ``checksum`` and ``cell_type``.

Files are written the way Jupyter writes them (JSON, ``indent=1``, sorted keys,
``ensure_ascii=False``, trailing newline), so the output is byte-for-byte deterministic and
``generate_all(..., check=True)`` can tell whether ``exercises/`` is in sync.

nbformat is imported lazily: importing this module costs only the standard library.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

__all__ = [
    "BEGIN_SOLUTION",
    "END_SOLUTION",
    "BEGIN_HIDDEN_TESTS",
    "END_HIDDEN_TESTS",
    "CODE_STUB",
    "MARKDOWN_STUB",
    "MarkupError",
    "NotebookReadError",
    "read_notebook",
    "notebook_to_text",
    "write_notebook",
    "clear_source",
    "generate_exercise",
    "generate_all",
    "orphan_exercises",
]

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN_TESTS = "### BEGIN HIDDEN TESTS"
END_HIDDEN_TESTS = "### END HIDDEN TESTS"
_MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS)

CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
MARKDOWN_STUB = ("YOUR ANSWER HERE",)

# Cell metadata written by execution tools; meaningless once outputs are cleared.
_TRANSIENT_CELL_METADATA = ("execution", "ExecuteTime")


class MarkupError(ValueError):
    """Unbalanced or nested BEGIN/END markers in a solution notebook."""


class NotebookReadError(ValueError):
    """A file that should be a Jupyter notebook (nbformat 4) is missing or is not one."""


# ----------------------------------------------------------------------------------- reading


def read_notebook(path: str | Path):
    """Read an nbformat-4 notebook without modifying it (no id repair, no upgrade).

    Raises :class:`NotebookReadError` with a message naming the file and what was expected.
    """
    import nbformat

    path = Path(path)
    if not path.exists():
        raise NotebookReadError(f"{path}: no such file (expected a Jupyter notebook, *.ipynb)")
    if path.is_dir():
        raise NotebookReadError(f"{path}: is a directory (expected a Jupyter notebook, *.ipynb)")
    if path.suffix != ".ipynb":
        raise NotebookReadError(f"{path}: not a notebook file (expected a *.ipynb Jupyter notebook)")
    try:
        with open(path, "rb") as fh:  # read-only
            raw = fh.read()
        text = raw.decode("utf-8-sig")
        data = json.loads(text)
    except OSError as exc:
        raise NotebookReadError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotebookReadError(
            f"{path}: not a Jupyter notebook (expected nbformat 4 JSON; {type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise NotebookReadError(f"{path}: not a Jupyter notebook (expected nbformat 4 JSON with a 'cells' list)")
    version = data.get("nbformat")
    if version != 4:
        raise NotebookReadError(
            f"{path}: notebook format {version!r} is not supported (expected nbformat 4; "
            "open and save it in a current Jupyter to convert it)"
        )
    cells = data.get("cells")
    if not isinstance(cells, list) or not all(
        isinstance(c, dict) and c.get("cell_type") in ("code", "markdown", "raw") for c in cells
    ):
        raise NotebookReadError(f"{path}: malformed notebook (expected a list of code/markdown/raw cells)")
    for cell in cells:
        src = cell.get("source", "")
        if isinstance(src, list):
            cell["source"] = "".join(src)
        elif not isinstance(src, str):
            raise NotebookReadError(f"{path}: malformed notebook (a cell source is neither text nor lines)")
        cell.setdefault("metadata", {})
        if cell["cell_type"] == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
            for out in cell["outputs"]:
                if isinstance(out, dict) and out.get("output_type") == "stream" and isinstance(out.get("text"), list):
                    out["text"] = "".join(out["text"])
    data.setdefault("metadata", {})
    data.setdefault("nbformat_minor", 0)
    return nbformat.from_dict(data)


# ----------------------------------------------------------------------------------- writing


def notebook_to_text(nb) -> str:
    """The exact text Jupyter would save for ``nb`` (indent=1, sorted keys, trailing newline)."""
    from nbformat.v4 import nbjson

    text = nbjson.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def write_notebook(nb, path: str | Path) -> bool:
    """Write ``nb`` to ``path`` unless the file already holds exactly that text; True if written."""
    path = Path(path)
    data = notebook_to_text(nb).encode("utf-8")
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


# ------------------------------------------------------------------------------ transforming


def _marker(line: str) -> str | None:
    stripped = line.strip()
    return stripped if stripped in _MARKERS else None


def clear_source(source: str, *, cell_type: str = "code", where: str = "cell") -> tuple[str, bool]:
    """Replace solution blocks by stubs and drop hidden-test blocks; return ``(source, changed)``.

    Raises :class:`MarkupError` (naming ``where`` and the line) for unbalanced or nested markers.
    """
    stub = CODE_STUB if cell_type == "code" else MARKDOWN_STUB
    lines = source.split("\n")
    out: list[str] = []
    state: str | None = None
    opened_at = 0
    changed = False
    for lineno, line in enumerate(lines, 1):
        mark = _marker(line)
        if state is None:
            if mark == BEGIN_SOLUTION:
                state, opened_at, changed = "solution", lineno, True
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(indent + s for s in stub)
            elif mark == BEGIN_HIDDEN_TESTS:
                state, opened_at, changed = "hidden", lineno, True
            elif mark is not None:
                raise MarkupError(f"{where}, line {lineno}: {mark!r} without a matching BEGIN line")
            else:
                out.append(line)
        else:
            end = END_SOLUTION if state == "solution" else END_HIDDEN_TESTS
            if mark == end:
                state = None
            elif mark is not None:
                raise MarkupError(
                    f"{where}, line {lineno}: {mark!r} inside the block opened on line {opened_at} "
                    f"(expected {end!r} first; blocks cannot nest)"
                )
    if state is not None:
        end = END_SOLUTION if state == "solution" else END_HIDDEN_TESTS
        raise MarkupError(f"{where}, line {opened_at}: block is never closed (expected {end!r})")
    if changed:
        while out and not out[-1].strip():
            out.pop()
    return "\n".join(out), changed


def _nbgrader(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _describe(cell, index: int) -> str:
    gid = _nbgrader(cell).get("grade_id")
    return f"cell {index}" + (f" ({gid!r})" if gid else "")


def _lock(cell) -> None:
    """nbgrader's LockCells: answer cells undeletable; test and read-only cells also uneditable."""
    meta = _nbgrader(cell)
    if not meta:
        return
    if meta.get("solution"):
        cell.metadata["deletable"] = False
    elif meta.get("grade") or meta.get("locked"):
        cell.metadata["deletable"] = False
        cell.metadata["editable"] = False


def _checksum(cell) -> None:
    """nbgrader's ComputeChecksums on the released cell: ``nbgrader.checksum`` (MD5 of the source,
    the cell type, the grade/solution/locked flags, the grade id and the points) and
    ``nbgrader.cell_type``, which nbgrader uses to tell an untouched answer from a changed one."""
    meta = _nbgrader(cell)
    if not meta or not meta.get("grade_id"):
        return
    grade, solution = bool(meta.get("grade", False)), bool(meta.get("solution", False))
    locked = False if solution else (True if grade else bool(meta.get("locked", False)))
    if not (grade or solution or locked):
        return
    m = hashlib.md5()
    for part in (cell.source, cell.cell_type, str(grade), str(solution), str(locked), meta["grade_id"]):
        m.update(part.encode("utf-8"))
    if grade:
        m.update(str(float(meta.get("points", 0))).encode("utf-8"))
    meta["checksum"] = m.hexdigest()
    meta["cell_type"] = cell.cell_type


def _deterministic_id(index: int, cell) -> str:
    key = f"{index}\0{_nbgrader(cell).get('grade_id', '')}\0{cell.get('source', '')}"
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]


def generate_exercise(nb, *, name: str = "notebook"):
    """Return the student version of the instructor notebook ``nb`` (``nb`` is not modified)."""
    import nbformat

    student = nbformat.from_dict(copy.deepcopy(dict(nb)))
    student.metadata.pop("widgets", None)  # widget state belongs to the cleared outputs
    needs_ids = (student.get("nbformat", 4), student.get("nbformat_minor", 0)) >= (4, 5)
    seen_ids: set[str] = set()
    for index, cell in enumerate(student.cells):
        where = f"{name}: {_describe(cell, index)}"
        if cell.cell_type in ("code", "markdown"):
            source, changed = clear_source(cell.source, cell_type=cell.cell_type, where=where)
            if (
                not changed
                and cell.cell_type == "code"
                and _nbgrader(cell).get("solution")
                and CODE_STUB[1] not in source  # already a stub: keeps generation idempotent
            ):
                # nbgrader: an answer cell without markers is replaced as a whole
                source = "\n".join(CODE_STUB)
            cell.source = source
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in _TRANSIENT_CELL_METADATA:
            cell.metadata.pop(key, None)
        _lock(cell)
        _checksum(cell)
        if needs_ids and not cell.get("id"):
            cell["id"] = _deterministic_id(index, cell)
        if "id" in cell:
            while cell["id"] in seen_ids:
                cell["id"] = hashlib.sha1(cell["id"].encode()).hexdigest()[:8]
            seen_ids.add(cell["id"])
    return student


def generate_all(
    solutions_dir: str | Path = "solutions",
    exercises_dir: str | Path = "exercises",
    check: bool = False,
) -> list[Path]:
    """Regenerate ``exercises_dir/NAME.ipynb`` from every ``solutions_dir/NAME.ipynb``.

    Returns the exercise files that changed (with ``check=True``: that are out of sync, i.e.
    missing or different; nothing is written). Raises :class:`NotebookReadError` /
    :class:`MarkupError` naming the file for a broken solution notebook.
    """
    solutions_dir, exercises_dir = Path(solutions_dir), Path(exercises_dir)
    if not solutions_dir.is_dir():
        raise NotebookReadError(f"{solutions_dir}: no such directory (expected the instructor notebooks)")
    changed: list[Path] = []
    for src in sorted(solutions_dir.glob("*.ipynb")):
        nb = read_notebook(src)
        student = generate_exercise(nb, name=str(src))
        dest = exercises_dir / src.name
        text = notebook_to_text(student).encode("utf-8")
        if dest.exists() and dest.read_bytes() == text:
            continue
        changed.append(dest)
        if not check:
            write_notebook(student, dest)
    return changed


def orphan_exercises(solutions_dir: str | Path, exercises_dir: str | Path) -> list[Path]:
    """Exercise notebooks that have no solution notebook any more."""
    solutions_dir, exercises_dir = Path(solutions_dir), Path(exercises_dir)
    if not exercises_dir.is_dir():
        return []
    return [p for p in sorted(exercises_dir.glob("*.ipynb")) if not (solutions_dir / p.name).exists()]
