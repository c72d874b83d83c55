"""The repository's address, kept in one place: ``repository: url:`` and ``branch:`` in
``_config.yml``.

Other files repeat it, and each copy is derived from those two fields:

* the Colab install cell of every notebook in ``chapters/``, ``exercises/`` and ``solutions/``
  (the first code cell tagged ``remove-cell``): ``"gencourse @ git+<url>@<branch>"``;
* the book's footer in ``_config.yml``: ``<url>/blob/<branch>/CITATION.cff``;
* ``CITATION.cff``: ``repository-code: "<url>"`` and, for a GitHub address, the book's GitHub
  Pages address ``url: "https://<owner>.github.io/<name>"``;
* the BibTeX entry of ``intro.md``: ``url = {<url>}``.

``python -m gencourse.book url`` prints the address and the files whose copy disagrees;
``python -m gencourse.book url NEW_URL [--branch B]`` writes it into ``_config.yml`` and every copy.
Files are edited as text: only the characters of each copy change, so a notebook keeps its JSON
layout byte for byte and rewriting the old address back restores every file exactly.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["CONFIG", "NOTEBOOK_DIRS", "TEXT_COPIES", "check_url", "check_branch", "pages_url", "read_config",
           "copy_files", "places", "disagreements", "set_url"]

CONFIG = "_config.yml"
NOTEBOOK_DIRS = ("chapters", "exercises", "solutions")

# file -> patterns, each of which must match exactly once; the named groups are the copies
TEXT_COPIES: dict[str, tuple[str, ...]] = {
    CONFIG: (r'href="(?P<url>[^"\s]+?)/blob/(?P<branch>[^"\s]+)/CITATION\.cff"',),
    "CITATION.cff": (r'(?m)^repository-code:[ \t]*"(?P<url>[^"\n]+)"', r'(?m)^url:[ \t]*"(?P<pages>[^"\n]+)"'),
    "intro.md": (r"(?m)^[ \t]*url[ \t]*=[ \t]*\{(?P<url>[^}\n]+)\}",),
}
INSTALL = re.compile(r'gencourse @ git\+(?P<url>[^\s"\\@]+)@(?P<branch>[^\s"\\]+)')
KINDS = ("url", "branch", "pages")

_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~%+-]+)+")
_BRANCH = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")

Span = tuple[str, int, int]  # what ("url", "branch" or "pages") and where it lies in the file's text


def check_url(url: str) -> str:
    """``url`` if it is a repository address ``https://host/owner/name``: no trailing slash, no
    ``.git``, no spaces, quotes or ``@`` (it is written into ``git+<url>@<branch>``); else a ValueError."""
    if not isinstance(url, str) or not _URL.fullmatch(url) or url.endswith(".git"):
        raise ValueError(f"repository URL: expected https://host/owner/name (no trailing slash, no .git, "
                         f"no spaces, quotes or @), got {url!r}")
    return url


def check_branch(branch: str) -> str:
    """``branch`` if it is a plain git branch name (letters, digits, ``._-`` and ``/``); else a ValueError."""
    if not isinstance(branch, str) or not _BRANCH.fullmatch(branch) or ".." in branch or branch.startswith("-"):
        raise ValueError(f"branch: expected a git branch name such as 'main', got {branch!r}")
    return branch


def pages_url(url: str) -> str | None:
    """Where GitHub Pages publishes the book of the GitHub repository ``url``
    (``https://github.com/Owner/name`` -> ``https://owner.github.io/name``); ``None`` elsewhere."""
    m = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+)", url)
    if not m:
        return None
    owner, name = m.group(1).lower(), m.group(2)
    return f"https://{owner}.github.io" if name.lower() == f"{owner}.github.io" else f"https://{owner}.github.io/{name}"


def _read(path: Path) -> str:
    if not path.is_file():
        raise ValueError(f"{path}: no such file (it holds a copy of the repository's address)")
    return path.read_bytes().decode("utf-8")  # bytes, so that line endings are kept as they are


def _config_spans(text: str) -> dict[str, tuple[int, int]]:
    """Where the values of ``repository: url:`` and ``branch:`` lie in ``_config.yml``'s text."""
    block = re.search(r"(?m)^repository:[ \t]*\n((?:[ \t]+.*\n?|[ \t]*\n)*)", text)
    if not block:
        raise ValueError(f"{CONFIG}: no `repository:` section (expected `repository:` with `url:` and `branch:`)")
    spans = {}
    for key in ("url", "branch"):
        m = re.compile(rf"(?m)^[ \t]+{key}:[ \t]*([\"']?)(?P<value>[^\s\"']+)\1[ \t]*$").search(text, *block.span(1))
        if not m:
            raise ValueError(f"{CONFIG}: no `{key}:` in the `repository:` section")
        spans[key] = m.span("value")
    return spans


def read_config(root: Path = Path(".")) -> tuple[str, str]:
    """The repository's ``(url, branch)`` as ``_config.yml`` records them."""
    text = _read(Path(root) / CONFIG)
    return tuple(text[slice(*span)] for span in _config_spans(text).values())


def copy_files(root: Path = Path(".")) -> list[Path]:
    """The files that hold a copy of the address (``_config.yml`` first), relative to ``root``."""
    notebooks = [p.relative_to(root) for d in NOTEBOOK_DIRS for p in sorted((Path(root) / d).glob("*.ipynb"))]
    return [Path(name) for name in TEXT_COPIES] + notebooks


def _pattern_spans(text: str, pattern: str, name: str) -> list[Span]:
    matches = list(re.finditer(pattern, text))
    if len(matches) != 1:
        raise ValueError(f"{name}: expected one match of {pattern!r}, found {len(matches)}")
    m = matches[0]
    return [(k, *m.span(k)) for k in KINDS if k in m.groupdict()]


def _install_line(text: str, name: str) -> str:
    """The source line of the notebook's install cell that holds ``gencourse @ git+<url>@<branch>``."""
    try:
        cells = json.loads(text)["cells"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{name}: not a Jupyter notebook ({err})") from None
    install = next((c for c in cells if c.get("cell_type") == "code" and "remove-cell" in c.get("metadata", {}).get("tags", [])), None)
    source = install and install["source"]
    lines = [line for line in ("".join(source) if isinstance(source, list) else source or "").splitlines(True) if INSTALL.search(line)]
    if len(lines) != 1:
        raise ValueError(f"{name}: expected the first code cell tagged remove-cell to install "
                         f"'gencourse @ git+<url>@<branch>' on one line, found {len(lines)} such lines")
    return lines[0]


def _notebook_spans(text: str, name: str) -> list[Span]:
    """The install cell's copy, located in the notebook's JSON text (the line as JSON encodes it)."""
    encoded = json.dumps(_install_line(text, name), ensure_ascii=False)[1:-1]
    if text.count(encoded) != 1:
        raise ValueError(f"{name}: the install line {encoded!r} occurs {text.count(encoded)} times in the file, expected once")
    start = text.index(encoded)
    m = INSTALL.search(encoded)
    return [(k, start + m.start(k), start + m.end(k)) for k in ("url", "branch")]


def places(path: Path, text: str) -> list[Span]:
    """The copies of the address in the text of the file ``path`` (a notebook or one of :data:`TEXT_COPIES`)."""
    if path.suffix == ".ipynb":
        return _notebook_spans(text, str(path))
    if path.as_posix() not in TEXT_COPIES:
        raise ValueError(f"{path}: not a file that holds a copy of the address")
    return [span for pattern in TEXT_COPIES[path.as_posix()] for span in _pattern_spans(text, pattern, str(path))]


def _expected(url: str, branch: str) -> dict[str, str | None]:
    return {"url": url, "branch": branch, "pages": pages_url(url)}


def disagreements(root: Path = Path(".")) -> list[str]:
    """``"file: what it says"`` for every copy that differs from ``_config.yml`` or cannot be found."""
    root = Path(root)
    want = _expected(*read_config(root))
    found = []
    for path in copy_files(root):
        try:
            text = _read(root / path)
            wrong = [f"{k} {text[a:b]!r}" for k, a, b in places(path, text) if want[k] is not None and text[a:b] != want[k]]
        except ValueError as err:
            wrong = [f"no copy found ({err})"]
        if wrong:
            found.append(f"{path}: " + ", ".join(wrong))
    return found


def _replace(text: str, spans: list[Span], values: dict[str, str | None]) -> str:
    """``text`` with each span set to its value (spans whose value is ``None`` left as they are)."""
    for kind, a, b in sorted(spans, key=lambda s: s[1], reverse=True):
        if values[kind] is not None:
            text = text[:a] + values[kind] + text[b:]
    return text


def set_url(root: Path = Path("."), url: str | None = None, branch: str | None = None) -> list[Path]:
    """Write ``url`` and ``branch`` (default: those of ``_config.yml``) into ``_config.yml`` and every
    copy; return the files that changed. Every file is read and checked before any is written."""
    root = Path(root)
    old_url, old_branch = read_config(root)
    want = _expected(check_url(url or old_url), check_branch(branch or old_branch))
    new = {}
    for path in copy_files(root):
        text = _read(root / path)
        updated = _replace(text, places(path, text), want)
        if path.as_posix() == CONFIG:
            updated = _replace(updated, [(k, *span) for k, span in _config_spans(updated).items()], want)
        if updated != text:
            new[path] = updated
    for path, text in new.items():
        (root / path).write_bytes(text.encode("utf-8"))
    return list(new)
