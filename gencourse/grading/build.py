"""What to run for one submission: the plan, built from the submission and its solution notebook.

* Test cells (nbgrader ``grade: true``, ``solution: false``) are matched by ``grade_id`` and
  always come from the solution notebook, hidden tests included; a test cell the student deleted
  is put back (after the cell that precedes it in the solution when that cell is present, else at
  the end). Points come from the solution only.
* Every other code cell of the submission is the student's: it runs in the student process.
* The solution's other code cells are the instructor's setup (imports, a schedule to test with):
  they run in the test process, unless they use a name that an answer defines (a demonstration
  of the student's function: that one runs only in the student's notebook).
* A test cell sees the student's names that it uses (found by an AST scan) as proxies.
* Which library functions a question forbids comes from the answer cell's metadata
  (``metadata.gencourse.forbid``: a list of dotted names) or, failing that, from :data:`FORBID`.

Everything here is pure data (JSON-ready): the grader sends the plan to the worker process.
"""

from __future__ import annotations

import ast
import builtins
import copy
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .generate import clear_source

#: The library functions that implement an exercise, by question id (``chapter.answer_id``).
#: A student's answer may not call them: they are replaced by stubs that raise in the student's
#: process and flagged by a static check of the answer cells. A new exercise adds its entry here,
#: or lists the names in its answer cell's metadata: ``{"gencourse": {"forbid": ["gencourse.x.f"]}}``
#: (the metadata wins). Names that do not exist in the library are ignored.
FORBID: dict[str, list[str]] = {
    "generative_models.exp_icdf": ["gencourse.sampling.exponential_icdf"],
    "generative_models.sample_exponential": ["gencourse.sampling.inverse_cdf_sample"],
    "generative_models.ks_statistic": ["gencourse.sampling.ks_statistic"],
    "generative_models.linear_pushforward": ["gencourse.sampling.pushforward_gaussian"],
    "divergences.kl_diag_gaussians": ["gencourse.divergences.kl_gaussians", "gencourse.divergences.kl_normal"],
    "divergences.kl_monte_carlo": ["gencourse.divergences.kl_monte_carlo"],
    "divergences.js_divergence": ["gencourse.divergences.js_discrete"],
    "divergences.kde_log_prob": ["gencourse.density.kde_log_prob"],
    "divergences.gaussian_mle": ["gencourse.density.gaussian_mle"],
    "optimal_transport.wasserstein_1d": ["gencourse.transport.wasserstein_1d",
                                         "gencourse.transport.wasserstein_1d_quantile"],
    "optimal_transport.w2_diag_gaussians": ["gencourse.transport.wasserstein2_gaussians",
                                            "gencourse.transport.wasserstein2_gaussians_squared"],
    "optimal_transport.sinkhorn": ["gencourse.transport.sinkhorn"],
    "optimal_transport.c_transform": ["gencourse.transport.c_transform"],
    "optimal_transport.dual_value": ["gencourse.transport.kantorovich_dual"],
    "optimal_transport.gradient_penalty": ["gencourse.losses.gradient_penalty",
                                           "gencourse.transport.gradient_penalty"],
    "vae.reparameterize": [],
    "vae.kl_standard_normal": ["gencourse.divergences.kl_gaussians"],
    "vae.negative_elbo": ["gencourse.losses.vae_loss", "gencourse.losses.elbo"],
    "vae.iwae_bound": ["gencourse.losses.iwae_bound"],
    "gans.d_loss": ["gencourse.losses.d_loss_bce", "gencourse.losses.discriminator_loss"],
    "gans.g_loss_ns": ["gencourse.losses.g_loss_non_saturating", "gencourse.losses.generator_loss"],
    "gans.optimal_d": ["gencourse.divergences.optimal_discriminator"],
    "gans.discriminator_step": ["gencourse.train.d_step"],
    "gans.generator_step": ["gencourse.train.g_step"],
    "diffusion.q_sample": ["gencourse.diffusion.q_sample"],
    "diffusion.ddpm_loss": ["gencourse.diffusion.ddpm_loss"],
    "diffusion.ddpm_step": ["gencourse.diffusion.ddpm_sample_step"],
    "diffusion.ddim_step": ["gencourse.diffusion.ddim_step"],
    "diffusion.guided_eps": ["gencourse.diffusion.guided_eps"],
    "evaluation.frechet_gaussians": ["gencourse.metrics.frechet_distance_gaussians",
                                     "gencourse.transport.wasserstein2_gaussians",
                                     "gencourse.transport.wasserstein2_gaussians_squared"],
    "evaluation.fid_from_features": ["gencourse.metrics.frechet_distance"],
    "evaluation.kid_unbiased": ["gencourse.metrics.mmd2_unbiased", "gencourse.metrics.kid"],
    "evaluation.precision_recall_knn": ["gencourse.metrics.precision_recall"],
    "evaluation.bits_per_dim": ["gencourse.metrics.bits_per_dim"],
}


class GradingInputError(ValueError):
    """The submission or solution is missing, is not a notebook, or has no solution to match."""


# ------------------------------------------------------------------------------ notebook parts


def nbgrader(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def grade_id(cell) -> str | None:
    gid = nbgrader(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid else None


def is_test(cell) -> bool:
    meta = nbgrader(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and grade_id(cell) is not None


def is_answer(cell) -> bool:
    return bool(nbgrader(cell).get("solution"))


def points(cell) -> float:
    try:
        value = float(nbgrader(cell).get("points", 0) or 0)
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


def chapter_name(solution_name: str) -> str:
    """``12_diffusion.ipynb`` -> ``diffusion``."""
    stem = Path(solution_name).stem
    head, _, rest = stem.partition("_")
    return rest if head.isdigit() and rest else stem


# ------------------------------------------------------------------------------------ locating


def _fuzzy_in(directory: Path, stem: str) -> Path | None:
    """The solution whose stem is the longest one contained in ``stem`` (e.g. alice_00_x)."""
    hits = [p for p in directory.glob("*.ipynb") if p.stem and p.stem in stem]
    if not hits:
        return None
    best = max(len(p.stem) for p in hits)
    longest = [p for p in hits if len(p.stem) == best]
    return longest[0] if len(longest) == 1 else None


def find_solution(submission: str | Path, solutions: str | Path | None = None) -> Path:
    """The solution notebook for ``submission``, matched by file name.

    ``solutions`` may be a notebook (used as is) or a folder. Without it, ``solutions/`` is
    looked for next to the submission's folder and above it (``exercises/00_x.ipynb`` ->
    ``solutions/00_x.ipynb``), then in the current directory. When no file has the same name,
    a unique solution whose name is contained in the submission's (``alice_00_x.ipynb``) is used.
    Raises :class:`GradingInputError` naming the places looked at.
    """
    submission = Path(submission)
    name = submission.name
    if solutions is not None:
        solutions = Path(solutions)
        if solutions.suffix == ".ipynb" or solutions.is_file():
            if not solutions.is_file():
                raise GradingInputError(f"{solutions}: no such solution notebook")
            return solutions
        if not solutions.is_dir():
            raise GradingInputError(f"{solutions}: no such solutions folder (expected a folder of *.ipynb)")
        dirs = [solutions]
    else:
        dirs = []
        for parent in [submission.resolve().parent, *submission.resolve().parents]:
            cand = parent / "solutions"
            if cand.is_dir() and cand not in dirs:
                dirs.append(cand)
        cwd_solutions = Path("solutions")
        if cwd_solutions.is_dir() and cwd_solutions.resolve() not in [d.resolve() for d in dirs]:
            dirs.append(cwd_solutions)
    for directory in dirs:
        if (directory / name).is_file():
            return directory / name
    for directory in dirs:
        hit = _fuzzy_in(directory, submission.stem)
        if hit is not None:
            return hit
    where = ", ".join(str(d) for d in dirs) if dirs else "no solutions/ folder found near it or in ./solutions"
    raise GradingInputError(
        f"{submission}: no matching solution notebook (expected solutions/{name}; looked in: {where}; "
        "use --solutions DIR)"
    )


# ------------------------------------------------------------------------------------ names


def _parse(source: str):
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def loaded_names(source: str) -> set[str]:
    """The global names the code reads, at any depth (in functions and lambdas too, but not their
    parameters and local variables)."""
    import symtable

    try:
        table = symtable.symtable(source, "<cell>", "exec")
    except (SyntaxError, ValueError):
        return set()
    out: set[str] = set()

    def visit(t, top: bool) -> None:
        for sym in t.get_symbols():
            if sym.is_referenced() and (top or sym.is_global()):
                out.add(sym.get_name())
        for child in t.get_children():
            visit(child, False)

    visit(table, True)
    return out


def defined_names(source: str, imports: bool = True) -> set[str]:
    """The names a cell binds at top level (defs, classes, assignments, loop targets, and imports
    unless ``imports`` is false)."""
    tree = _parse(source)
    if tree is None:
        return set()
    out: set[str] = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.add(child.name)
                continue
            if isinstance(child, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for alias in child.names if imports else ():
                    if alias.name != "*":
                        out.add((alias.asname or alias.name).split(".")[0])
                continue
            if isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
                out.add(child.id)
            if isinstance(child, ast.NamedExpr) and isinstance(child.target, ast.Name):
                out.add(child.target.id)
            visit(child)

    visit(tree)
    return out


def signatures(source: str) -> dict[str, str]:
    """``{name: "name(a, b=1)"}`` for the top-level functions of a cell."""
    tree = _parse(source)
    if tree is None:
        return {}
    return {n.name: f"{n.name}({ast.unparse(n.args)})" for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def import_aliases(sources: list[str]) -> dict[str, str]:
    """``{local name: module path}`` for the imports of these cells (``gc -> gencourse``,
    ``F -> torch.nn.functional``, ``ae -> gencourse.models.autoencoder``)."""
    aliases: dict[str, str] = {}
    for source in sources:
        tree = _parse(source)
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                for a in node.names:
                    aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def forbidden_references(source: str, forbid: list[str], aliases: dict[str, str] | None = None) -> list[str]:
    """The names of ``forbid`` that ``source`` refers to, resolving import aliases:
    ``gc.diffusion.ddim_step``, ``from gencourse.diffusion import ddim_step``,
    ``getattr(gc.diffusion, "ddim_step")`` (but not ``F.one_hot`` for ``gencourse...one_hot``)."""
    tree = _parse(source)
    if tree is None or not forbid:
        return []
    aliases = {**(aliases or {}), **import_aliases([source])}
    by_name: dict[str, list[str]] = {}
    for path in forbid:
        by_name.setdefault(path.rpartition(".")[2], []).append(path)
    found: list[str] = []

    def hit(name: str, full: str | None):
        for path in by_name.get(name, []):
            if (full is None or full == path or (full.startswith("gencourse.") and full.endswith("." + name))) \
                    and path not in found:
                found.append(path)

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in by_name:
            dotted = _dotted(node)
            if dotted is None:
                continue
            root, _, rest = dotted.partition(".")
            full = aliases.get(root, root) + ("." + rest if rest else "")
            if full.startswith("gencourse"):
                hit(node.attr, full)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "gencourse":
            for alias in node.names:
                hit(alias.name, f"{node.module}.{alias.name}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value in by_name):
            hit(node.args[1].value, None)
    return found


# ------------------------------------------------------------------------------------ the plan


@dataclass
class Question:
    grade_id: str
    max_points: float
    index: int = -1  # position of the test cell in the built notebook
    reinserted: bool = False
    modified: bool = False  # the submission's copy of the test differed from the exercise's
    answer_ids: list[str] = field(default_factory=list)  # answer cells of the solution
    missing_answers: list[str] = field(default_factory=list)
    answer_indices: list[int] = field(default_factory=list)  # in the built notebook
    late_answers: list[str] = field(default_factory=list)  # answer cells placed after the test
    forbid: list[str] = field(default_factory=list)
    forbidden_calls: list[str] = field(default_factory=list)  # found by the static check
    bind: list[str] = field(default_factory=list)
    setup_upto: int = 0


def _clean_copy(cell):
    cell = copy.deepcopy(cell)
    if cell.get("cell_type") == "code":
        cell["outputs"] = []
        cell["execution_count"] = None
    return cell


def build_plan(submission_nb, solution_nb, *, solution_name: str = "solution") -> dict:
    """The plan: ``{cells, questions, setup, signatures, forbid, matched}`` (see module doc).

    ``cells`` is the notebook as it will run: ``{"kind": "student"|"test"|"markdown", "source",
    "grade_id", "id", "metadata"}``.
    """
    sol_cells = list(solution_nb["cells"])
    chapter = chapter_name(solution_name)
    tests: dict[str, int] = {}
    for i, cell in enumerate(sol_cells):
        if is_test(cell):
            gid = grade_id(cell)
            if gid in tests:
                raise GradingInputError(f"{solution_name}: grade_id {gid!r} is used by two graded cells")
            tests[gid] = i

    # questions, in the solution's order, with the answer cells that precede each test
    questions: dict[str, Question] = {}
    pending: list[str] = []
    answer_cells: dict[str, Any] = {}
    for cell in sol_cells:
        if is_test(cell):
            gid = grade_id(cell)
            questions[gid] = Question(gid, points(cell), answer_ids=pending)
            pending = []
        elif is_answer(cell) and grade_id(cell):
            pending.append(grade_id(cell))
            answer_cells[grade_id(cell)] = cell

    # names: what the answers define; setup cells that use them are demonstrations
    student_names: set[str] = set()
    sigs: dict[str, str] = {}
    for cell in sol_cells:
        if cell.get("cell_type") == "code" and is_answer(cell):
            student_names |= defined_names(cell.get("source", ""), imports=False)
            sigs.update(signatures(cell.get("source", "")))
    setup: list[str] = []
    setup_before_test: dict[str, int] = {}
    for cell in sol_cells:
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if is_test(cell):
            setup_before_test[grade_id(cell)] = len(setup)
        elif not is_answer(cell) and source.strip():
            if loaded_names(source) & student_names:
                student_names |= defined_names(source, imports=False)
            else:
                setup.append(source)
    instructor_names = set(dir(builtins))
    for source in setup:
        instructor_names |= defined_names(source)
    student_names -= instructor_names - {n for c in answer_cells.values() for n in defined_names(c.get("source", ""), imports=False)}

    # forbidden library functions, per question
    forbid_all: list[str] = []
    for q in questions.values():
        for aid in q.answer_ids:
            meta = answer_cells[aid].get("metadata", {}).get("gencourse", {})
            names = meta.get("forbid") if isinstance(meta, dict) else None
            if not isinstance(names, list):
                names = FORBID.get(f"{chapter}.{aid}", [])
            for name in names:
                if isinstance(name, str) and name.startswith("gencourse.") and name not in q.forbid:
                    q.forbid.append(name)
        forbid_all += [n for n in q.forbid if n not in forbid_all]

    # cells whose nbgrader metadata an editor dropped are recognised by their cell id
    by_cell_id = {c.get("id"): c for c in sol_cells if c.get("id") and grade_id(c)}
    built: list[Any] = []
    used: set[str] = set()
    matched = 0
    for cell in submission_nb["cells"]:
        cell = _clean_copy(cell)
        if "nbgrader" not in cell.get("metadata", {}) and cell.get("id") in by_cell_id:
            cell.setdefault("metadata", {})["nbgrader"] = copy.deepcopy(nbgrader(by_cell_id[cell["id"]]))
        gid = grade_id(cell)
        if gid in tests or gid in answer_cells:
            matched += 1
        if gid in tests:
            if gid in used:
                continue  # a duplicated test cell runs (and counts) once
            used.add(gid)
            original = sol_cells[tests[gid]]
            visible, _ = clear_source(original.get("source", ""), cell_type="code", where=gid)
            source = cell.get("source", "").strip()
            questions[gid].modified = source not in (visible.strip(), original.get("source", "").strip())
            built.append(_clean_copy(original))
        else:
            built.append(cell)

    for gid, sol_index in tests.items():  # put back the test cells the student deleted
        if gid in used:
            continue
        used.add(gid)
        position = None
        if sol_index > 0:
            prev = sol_cells[sol_index - 1]
            prev_gid, prev_id = grade_id(prev), prev.get("id")
            for j, cell in enumerate(built):
                if (prev_gid and grade_id(cell) == prev_gid) or (not prev_gid and prev_id and cell.get("id") == prev_id):
                    position = j + 1
                    break
        cell = _clean_copy(sol_cells[sol_index])
        if position is None:
            built.append(cell)
        else:
            built.insert(position, cell)
        questions[gid].reinserted = True

    seen: set[str] = set()  # cell ids stay unique after re-insertion
    for j, cell in enumerate(built):
        cid = cell.get("id")
        if cid is not None:
            while cid in seen:
                cid = f"{cid[:54]}-{j}"
            cell["id"] = cid
            seen.add(cid)

    aliases = import_aliases([c.get("source", "") for c in built if c.get("cell_type") == "code"])
    present = {grade_id(c) for c in built if grade_id(c)}
    answer_at = {}
    for j, cell in enumerate(built):
        gid = grade_id(cell)
        if gid in answer_cells and not is_test(cell) and gid not in answer_at:
            answer_at[gid] = j
    test_positions = {}
    for j, cell in enumerate(built):
        gid = grade_id(cell)
        if gid in questions and gid not in test_positions and is_test(cell):
            test_positions[gid] = j
    ordered = sorted(test_positions.values())
    for gid, q in questions.items():
        q.index = test_positions[gid]
        earlier = [p for p in ordered if p < q.index]
        start = earlier[-1] + 1 if earlier else 0
        q.answer_indices = [j for j in range(start, q.index) if is_answer(built[j])]
        q.missing_answers = [a for a in q.answer_ids if a not in present]
        q.late_answers = [a for a in q.answer_ids if a in answer_at and answer_at[a] > q.index]
        test_source = sol_cells[tests[gid]].get("source", "")
        q.bind = sorted((loaded_names(test_source) & student_names) - defined_names(test_source))
        q.setup_upto = setup_before_test.get(gid, len(setup))
        for aid in q.answer_ids:
            if aid in answer_at:
                source = built[answer_at[aid]].get("source", "")
                q.forbidden_calls += [n for n in forbidden_references(source, q.forbid, aliases)
                                      if n not in q.forbidden_calls]

    forbid_of_answer = {aid: q.forbid for q in questions.values() for aid in q.answer_ids}
    cells = []
    for cell in built:
        kind = cell.get("cell_type")
        cells.append({
            "forbid": forbid_of_answer.get(grade_id(cell), []) if is_answer(cell) else [],
            "kind": "test" if is_test(cell) else ("student" if kind == "code" else "markdown"),
            "source": cell.get("source", ""),
            "grade_id": grade_id(cell),
            "id": cell.get("id"),
            "cell_type": kind,
            "metadata": cell.get("metadata", {}),
        })
    imports: list[str] = []
    for source in [*setup, *(sol_cells[i].get("source", "") for i in tests.values())]:
        tree = _parse(source)
        for node in ast.walk(tree) if tree is not None else ():
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            imports += [n for n in names if n not in imports]
    return {
        "imports": imports,
        "cells": cells,
        "questions": [asdict(q) for q in questions.values()],
        "setup": setup,
        "signatures": {k: v for k, v in sigs.items() if k in student_names},
        "forbid": forbid_all,
        "matched": matched,
        "chapter": chapter,
        "nbformat_minor": submission_nb.get("nbformat_minor", 5),
        "metadata": copy.deepcopy(dict(submission_nb.get("metadata", {}))),
    }
