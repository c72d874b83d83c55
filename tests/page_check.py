"""Look at built pages as a reader does: headless Chromium, with every host but this machine
unreachable (a reader offline), dumps each page's DOM after its scripts ran; the checks then look
for what a reader would see wrong: raw TeX, a Python traceback, a broken image, a dead link."""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> str | None:
    """Chromium's path; installs Debian's package when missing and apt-get can (as root)."""
    path = find_chromium()
    if path or shutil.which("apt-get") is None:
        return path
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "timeout": 900}
    for steps in ([["apt-get", "install", "-y", "-qq", "chromium"]],
                  [["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]]):
        try:
            for step in steps:
                subprocess.run(step, check=True, **quiet)
        except (subprocess.SubprocessError, OSError):
            continue
        return find_chromium()
    return None


class _Server:
    """A static file server for ``root`` on 127.0.0.1, in a thread, for a ``with`` block."""

    def __init__(self, root: Path):
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def rendered_dom(chromium: str, url: str, tmp: Path, wait_ms: int = 15000) -> str:
    """The DOM of ``url`` after its scripts ran, with no host but 127.0.0.1 reachable."""
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--virtual-time-budget={wait_ms}", "--dump-dom", url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return out.stdout


_TEX = re.compile(r"(\$\$|\\\[|\\\(|\\begin\{(equation|align)|\\frac\{|\\mathbb\{)")


def _visible_text(dom: str) -> str:
    """The DOM without scripts, styles, code and MathJax's own assistive copies."""
    dom = re.sub(r"<(script|style|pre|code|mjx-assistive-mml|textarea)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"<[^>]+>", " ", dom)


def page_problems(dom: str, page: Path, html_root: Path) -> list[str]:
    """What a reader would see wrong on one page (an empty list when it is fine)."""
    problems = []
    if "<mjx-container" not in dom and re.search(r'class="math', dom):
        problems.append("formulas were not rendered by MathJax")
    raw = _TEX.search(_visible_text(dom))
    if raw:
        problems.append(f"raw TeX is visible: {raw.group(0)!r}")
    if "Traceback (most recent call last)" in dom or re.search(r'class="[^"]*\btraceback\b', dom):
        problems.append("a Python traceback is shown")
    for anim in re.findall(r'<img id="(_anim_img\w+)"([^>]*)>', dom):  # matplotlib's players set their first frame
        if 'src="data:image/' not in anim[1]:
            problems.append(f"an interactive figure did not start (no frame in {anim[0]})")
    for target in re.findall(r'<script[^>]*\ssrc="(https?://[^"]+)"', dom) + re.findall(r'<link[^>]*\shref="(https?://[^"]+\.(?:css|js)[^"]*)"', dom):
        problems.append(f"loads from the network (missing offline): {target}")
    for kind, target in re.findall(r'<(img)[^>]*\ssrc="([^"]+)"', dom) + re.findall(r'<(a)[^>]*\shref="([^"#][^"]*)"', dom):
        parts = urlsplit(target)
        if parts.scheme in ("http", "https", "mailto", "data", "javascript") or parts.netloc:
            continue
        local = (page.parent / unquote(parts.path)).resolve()
        if not local.exists():
            problems.append(f"{'broken image' if kind == 'img' else 'dead link'}: {target}")
    return problems


def check_pages(html_root: Path, pages: list[Path], tmp: Path, chromium: str) -> dict[str, list[str]]:
    """``{page: problems}`` for the pages (paths under ``html_root``) that have any."""
    found = {}
    with _Server(html_root) as server:
        for page in pages:
            rel = page.relative_to(html_root).as_posix()
            dom = rendered_dom(chromium, f"{server.url}/{rel}", tmp)
            if not dom.strip():
                found[rel] = ["Chromium returned no page"]
                continue
            problems = page_problems(dom, page, html_root)
            if problems:
                found[rel] = problems
    return found
