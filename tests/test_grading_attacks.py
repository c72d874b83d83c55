"""A determined student against the grader: each attack gets exactly the marks the real answers
deserve, and every file it aims at stays as it was.

A small purpose-built chapter (``98_probe.ipynb``, torch, six questions) is graded with
submissions that each carry several attacks, one per question, so that few gradings (a few
seconds each) cover them all.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from gencourse.grading import generate_all, grade, isolate
from gencourse.grading.__main__ import main as cli_main
from gencourse.grading.generate import notebook_to_text, read_notebook
from gencourse.grading.report import report_name

NAME = "98_probe.ipynb"
LIBRARY = Path(isolate.library_path())


def _answer(gid, source, forbid=None):
    meta = {"nbgrader": {"solution": True, "grade": False, "locked": False, "grade_id": gid, "schema_version": 3}}
    if forbid:
        meta["gencourse"] = {"forbid": forbid}
    return new_code_cell(source, id=f"ans-{gid}", metadata=meta)


def _test(gid, source, points):
    return new_code_cell(source, id=f"test-{gid}", metadata={"nbgrader": {
        "solution": False, "grade": True, "locked": True, "grade_id": gid, "points": points, "schema_version": 3}})


SETUP = "import math\nimport torch\nfrom torch import nn\nimport gencourse as gc\nfrom gencourse.grading import check"
ANSWERS = {
    "exp_icdf": "def exp_icdf(u, rate):\n    return -torch.log1p(-u) / rate",
    "ddim_step": ("def ddim_step(x_t, t, t_prev, eps_hat, alpha_bar):\n"
                  "    x0_hat = (x_t - (1 - alpha_bar[t]).sqrt() * eps_hat) / alpha_bar[t].sqrt()\n"
                  "    return alpha_bar[t_prev].sqrt() * x0_hat + (1 - alpha_bar[t_prev]).sqrt() * eps_hat"),
    "sample_exp": "def sample_exp(n, rate, generator=None):\n    return -torch.log1p(-torch.rand(n, generator=generator)) / rate",
    "square": "def square(x):\n    return x * x",
    "disc_step": ("def disc_step(G, D, opt, x_real, z):\n"
                  "    x_fake = G(z).detach()\n"
                  "    loss = nn.functional.softplus(-D(x_real)).mean() + nn.functional.softplus(D(x_fake)).mean()\n"
                  "    opt.zero_grad()\n    loss.backward()\n    opt.step()\n    return loss.item()"),
    "reparam": "def reparam(mu, logvar, eps):\n    return mu + torch.exp(0.5 * logvar) * eps",
}
TESTS = {
    "exp_icdf": ('check("generative_models.exp_icdf", exp_icdf)\n### BEGIN HIDDEN TESTS\n'
                 "_u = torch.linspace(0.0, 0.99, 33, dtype=torch.float64)\n"
                 "assert torch.allclose(exp_icdf(_u, 0.7).double(), -torch.log1p(-_u) / 0.7)\n### END HIDDEN TESTS", 2),
    "ddim_step": ("### BEGIN HIDDEN TESTS\n_ab = gc.diffusion.linear_schedule(T=100).alpha_bar\n"
                  "_x, _e = torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3)\n"
                  "assert torch.allclose(ddim_step(_x, 60, 30, _e, _ab), gc.diffusion.ddim_step(_x, 60, 30, _e, _ab), atol=1e-5)\n"
                  "### END HIDDEN TESTS", 2),
    "sample_exp": ("### BEGIN HIDDEN TESTS\nimport scipy.stats\n"
                   "_x = sample_exp(20_000, 0.5, generator=torch.Generator().manual_seed(3))\n"
                   "assert abs(_x.mean().item() - 2.0) < 0.1\n"
                   'assert scipy.stats.kstest(_x.numpy(), "expon", args=(0, 2.0)).pvalue > 1e-3\n### END HIDDEN TESTS', 2),
    "square": ("assert square(3) == 9\n### BEGIN HIDDEN TESTS\nassert square(-2) == 4\n### END HIDDEN TESTS", 1),
    "disc_step": ("### BEGIN HIDDEN TESTS\ntorch.manual_seed(3)\n"
                  "_G, _D = nn.Linear(4, 5), nn.Sequential(nn.Linear(5, 1), nn.Flatten(0))\n"
                  "_G0, _D0 = [p.detach().clone() for p in _G.parameters()], [p.detach().clone() for p in _D.parameters()]\n"
                  "_opt = torch.optim.Adam(_D.parameters(), 1e-2)\n"
                  "for _ in range(3):\n    disc_step(_G, _D, _opt, torch.randn(16, 5), torch.randn(16, 4))\n"
                  'assert all(p.grad is None or p.grad.abs().max() == 0 for p in _G.parameters()), "gradients reached G"\n'
                  'assert all(torch.equal(a, b) for a, b in zip(_G.parameters(), _G0)), "G changed"\n'
                  'assert not all(torch.equal(a, b) for a, b in zip(_D.parameters(), _D0)), "D did not change"\n'
                  'assert len(_opt.state) == 2, "the optimizer has no state"\n### END HIDDEN TESTS', 2),
    "reparam": ("### BEGIN HIDDEN TESTS\n_mu = torch.zeros(3, requires_grad=True)\n"
                "reparam(_mu, torch.zeros(3), torch.randn(3)).sum().backward()\n"
                "assert torch.allclose(_mu.grad, torch.ones(3))\n"
                "_lv = torch.zeros(2, requires_grad=True)\n"
                "(_g,) = torch.autograd.grad(reparam(torch.zeros(2), _lv, torch.ones(2)).sum(), _lv)\n"
                "assert torch.allclose(_g, torch.full((2,), 0.5))\n### END HIDDEN TESTS", 1),
}
FORBID = {"exp_icdf": ["gencourse.sampling.exponential_icdf"], "ddim_step": ["gencourse.diffusion.ddim_step"]}
POINTS = {f"test_{k}": v[1] for k, v in TESTS.items()}


def _solution():
    cells = [new_code_cell(SETUP, id="setup")]
    for gid, body in ANSWERS.items():
        head, _, rest = body.partition("\n")
        cells.append(_answer(gid, f"{head}\n    ### BEGIN SOLUTION\n{rest}\n    ### END SOLUTION", FORBID.get(gid)))
        source, pts = TESTS[gid]
        cells.append(_test(f"test_{gid}", source, pts))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    (root / "solutions").mkdir()
    nbformat.write(_solution(), root / "solutions" / NAME)
    generate_all(root / "solutions", root / "exercises")
    return root


def submission(probe, folder, answers, extra_first=""):
    """The exercise with the given answer cells (by grade id) replaced."""
    nb = read_notebook(probe / "exercises" / NAME)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    if extra_first:
        nb.cells.insert(1, new_code_cell(extra_first))
    path = probe / folder / NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(notebook_to_text(nb), encoding="utf-8")
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _by_gid(report):
    return {q["grade_id"]: q for q in report["questions"]}


def test_solution_full_marks_exercise_zero(probe):
    report = grade(probe / "solutions" / NAME, timeout=60)
    assert report["total"] == report["max_total"] == sum(POINTS.values()), [
        (q["grade_id"], q["message"]) for q in report["questions"] if q["status"] != "passed"]
    zero = grade(probe / "exercises" / NAME, timeout=60)
    assert zero["total"] == 0 and all(q["status"] in ("failed", "error") for q in zero["questions"])


SHADOW = {
    # the tests' own check, torch.allclose, abs and scipy.stats.kstest, replaced in the student's process
    "exp_icdf": ("check = lambda *a, **k: True\ntorch.allclose = lambda *a, **k: True\n"
                 "def exp_icdf(u, rate):\n    return u"),
    # the library's reference replaced by the student's (wrong) version
    "ddim_step": ("def ddim_step(x_t, t, t_prev, eps_hat, alpha_bar):\n    return x_t\n"
                  "gc.diffusion.ddim_step = ddim_step"),
    "sample_exp": ("import scipy.stats, builtins\n"
                   "scipy.stats.kstest = lambda *a, **k: type('R', (), {'pvalue': 1.0, 'statistic': 0.0})()\n"
                   "builtins.abs = lambda x: 0\nabs = lambda x: 0\n"
                   "def sample_exp(n, rate, generator=None):\n    return torch.zeros(n)"),
    # an object that equals everything and whose attributes are itself
    "square": ("class Anything:\n    def __eq__(self, other): return True\n    __ne__ = __lt__ = __le__ = __eq__\n"
               "    __gt__ = __ge__ = __eq__\n    def __getattr__(self, name): return self\n"
               "    def __call__(self, *a, **k): return self\n    def __bool__(self): return True\n"
               "def square(x):\n    return Anything()"),
    "disc_step": ANSWERS["disc_step"],  # a right answer among the attacks: its 2 points are due
    # an input transformer that turns every later cell into `pass`
    "reparam": ("def reparam(mu, logvar, eps):\n    return mu + logvar\n"
                "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])"),
}


def test_shadowing_monkeypatching_fake_objects_and_input_transformers_earn_nothing(probe):
    path = submission(probe, "shadow", SHADOW)
    before = _sha(path)
    report = grade(path, probe / "solutions", timeout=60)
    q = _by_gid(report)
    assert report["total"] == 2, [(g, e["status"], e["message"]) for g, e in q.items()]
    assert q["test_disc_step"]["status"] == "passed"
    for gid in ("test_exp_icdf", "test_ddim_step", "test_sample_exp", "test_reparam"):
        assert q[gid]["status"] == "failed", q[gid]
    assert "Anything" in q["test_square"]["message"] and "does not accept" in q["test_square"]["message"]
    assert q["test_exp_icdf"]["message"].startswith("AssertionError: ✘ generative_models.exp_icdf")
    # a failed hidden assert says what came and what was expected, never its source
    assert "got a tensor" in q["test_reparam"]["message"] and "reparam(" not in q["test_reparam"]["message"]
    assert _sha(path) == before


LIBRARY_CALLS = {
    "exp_icdf": ("def exp_icdf(u, rate):\n    f = getattr(gc.sampling, 'exponential' + '_icdf')\n"
                 "    return f(u, rate)"),
    "ddim_step": ("def ddim_step(x_t, t, t_prev, eps_hat, alpha_bar):\n"
                  "    return gc.diffusion.ddim_step(x_t, t, t_prev, eps_hat, alpha_bar)"),
    **{k: ANSWERS[k] for k in ("sample_exp", "square", "disc_step", "reparam")},
}


def test_calling_the_library_implementation_earns_nothing(probe):
    report = grade(submission(probe, "library", LIBRARY_CALLS), probe / "solutions", timeout=60)
    q = _by_gid(report)
    assert report["total"] == 6, [(g, e["status"], e["message"]) for g, e in q.items()]
    assert "gencourse.diffusion.ddim_step" in q["test_ddim_step"]["message"]
    assert "write it yourself" in q["test_ddim_step"]["message"]
    assert "calling gencourse.sampling.exponential_icdf is not allowed" in q["test_exp_icdf"]["message"]


def _files_attack(probe, other: Path) -> dict:
    solution = probe / "solutions" / NAME
    target = LIBRARY / "_written_by_a_submission.py"
    code = (
        "import json, pathlib\n"
        "def _try(f):\n    try:\n        f()\n    except Exception as e:\n        print('denied', e)\n"
        f"_sol, _other, _lib = pathlib.Path({str(solution)!r}), pathlib.Path({str(other)!r}), pathlib.Path({str(target)!r})\n"
        # read the instructor's notebook and run its answers
        "def _steal():\n"
        "    nb = json.loads(_sol.read_text())\n"
        "    for c in nb['cells']:\n"
        "        if c['metadata'].get('nbgrader', {}).get('solution'):\n"
        "            exec(''.join(c['source']).replace('### BEGIN SOLUTION', '').replace('### END SOLUTION', ''), globals())\n"
        "_try(_steal)\n"
        "_try(lambda: _sol.write_text('{}'))\n"
        "_try(lambda: _other.write_text('{}'))\n"
        "_try(lambda: _lib.write_text('raise SystemExit'))\n"
        # whether an existing library file could be opened for writing (nothing is written): the
        # answer below is right only if it could, so a grade above zero shows the hole
        "_writable = []\n"
        f"_try(lambda: (open({str(LIBRARY / 'grading' / 'score.py')!r}, 'r+').close(), _writable.append(1)))\n"
    )
    # the other answer cells left empty, so that they do not replace what was stolen
    fallback = "def exp_icdf(u, rate):\n    return -torch.log1p(-u) / rate if _writable else u"
    return {"exp_icdf": code + "\ntry:\n    exp_icdf\nexcept NameError:\n" + "\n".join("    " + line for line in fallback.split("\n")),
            **{k: "pass" for k in ANSWERS if k != "exp_icdf"}}


@pytest.mark.skipif(isolate.landlock_abi() < 1, reason="Landlock is not available in this kernel: without it (or "
                    "--sandbox) a student's process can read and write every file its user can")
def test_reading_solutions_and_rewriting_files_fail_and_touch_nothing(probe, tmp_path):
    other = submission(probe, "other", {k: ANSWERS[k] for k in ("square",)})
    attack = submission(probe, "files", _files_attack(probe, other))
    hashes = {p: _sha(p) for p in (probe / "solutions" / NAME, other, attack)}
    assert cli_main(["grade", str(attack), str(other), "--solutions", str(probe / "solutions"),
                     "--report-dir", str(tmp_path / "reports"), "--timeout", "60"]) == 0
    reports = {json.loads(p.read_text())["submission"]: json.loads(p.read_text()) for p in (tmp_path / "reports").iterdir()}
    # the stolen answers were not readable: the attack earns nothing; the other submission its 1 point
    assert reports[str(attack)]["total"] == 0
    assert reports[str(other)]["total"] == 1
    assert {p: _sha(p) for p in hashes} == hashes
    assert not (LIBRARY / "_written_by_a_submission.py").exists()


def test_detached_process_and_killing_the_parent_do_not_stop_the_batch(probe, tmp_path, monkeypatch):
    """Without Landlock (to show what the process machinery alone does): a detached process that
    would rewrite the report later is killed; killing the parent process ends only a waiter; killing
    the worker ends only that submission's grading."""
    reports = tmp_path / "reports"
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "detached_ran"
    # the detached process waits for the first report, then rewrites every report
    child = (f"import time, pathlib, glob\nfor _ in range(1500):\n    if glob.glob({str(reports)!r} + '/*.json'):\n"
             f"        break\n    time.sleep(0.2)\ntime.sleep(1)\npathlib.Path({str(marker)!r}).write_text('x')\n"
             f"[open(p, 'w').write('{{}}') for p in glob.glob({str(reports)!r} + '/*.json')]\n")
    detached = submission(probe, "detached", {**{k: ANSWERS[k] for k in ("square", "reparam")}, "exp_icdf": (
        "import subprocess, sys, os, signal\n"
        f"_code = {child!r}\n"
        "subprocess.Popen([sys.executable, '-c', _code], start_new_session=True, stdout=subprocess.DEVNULL,"
        " stderr=subprocess.DEVNULL)\n"
        "os.kill(os.getppid(), signal.SIGKILL)\n"
        "def exp_icdf(u, rate):\n    return -torch.log1p(-u) / rate")})
    worker_killer = submission(probe, "killer", {"square": (
        "import os, signal\n_pp = int(open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1])\n"
        "os.kill(_pp, signal.SIGKILL)\ndef square(x):\n    return x * x")})
    good = submission(probe, "good", {k: ANSWERS[k] for k in ("square", "sample_exp")})
    monkeypatch.setattr(isolate, "landlock_abi", lambda: 0)
    code = cli_main(["grade", str(detached), str(worker_killer), str(good), "--solutions", str(probe / "solutions"),
                     "--report-dir", str(reports), "--timeout", "60"])
    assert code == 0
    saved = {p: p.read_bytes() for p in reports.iterdir()}
    assert len(saved) == 3
    by_sub = {json.loads(b)["submission"]: json.loads(b) for b in saved.values()}
    # the parent of the student's process was only a waiter: grading went on, answers count
    assert by_sub[str(detached)]["total"] == 2 + 1 + 1, by_sub[str(detached)]["questions"]
    assert any("left behind" in n for n in by_sub[str(detached)]["isolation"])
    # the worker killed: that submission is reported as stopped, the next one graded in full
    assert by_sub[str(worker_killer)]["total"] == 0
    assert any("worker process of this submission was killed" in w for w in by_sub[str(worker_killer)]["warnings"])
    assert by_sub[str(good)]["total"] == 1 + 2
    time.sleep(4)
    assert not marker.exists()
    assert {p: p.read_bytes() for p in reports.iterdir()} == saved


@pytest.mark.skipif(isolate.bwrap_available() is None, reason="bubblewrap (bwrap) is not installed or cannot "
                    "create namespaces here")
def test_sandbox_hides_the_solutions(probe, tmp_path):
    other = submission(probe, "other_sandbox", {})
    attack = submission(probe, "sandboxed", {**_files_attack(probe, other), "square": ANSWERS["square"]})
    report = grade(attack, probe / "solutions", timeout=60, sandbox=True, landlock=False)
    assert report["total"] == 1, report["questions"]
    assert "sandbox: bubblewrap" in report["isolation"]


def test_report_names_are_unique_per_path():
    a, b = report_name("alice/98_probe.ipynb"), report_name("bob/98_probe.ipynb")
    assert a != b and a.endswith(".json") and "alice" in a and "bob" in b
    assert report_name("alice/98_probe.ipynb") == a
    assert report_name(Path("alice/98_probe.ipynb").resolve()) == a
