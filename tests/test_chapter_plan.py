"""The landing page and chapter 00 say which chapters of the plan are written: the ones in the
table of contents. This keeps that sentence true as chapters arrive."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WRITTEN = re.compile(r"\(?((?:\d\d(?:–\d\d)?(?:, | and ))*\d\d(?:–\d\d)?)\)? (?:are (?:all )?written|\(they are the ones)")


def chapters_in_toc() -> set[int]:
    toc = (ROOT / "_toc.yml").read_text()
    return {int(n) for n in re.findall(r"file:\s*chapters/(\d\d)_", toc)}


def numbers_said_written(text: str) -> set[int]:
    match = WRITTEN.search(" ".join(text.split()))
    assert match, "no sentence naming the written chapters"
    numbers = set()
    for part in re.split(r", | and ", match.group(1)):
        lo, _, hi = part.partition("–")
        numbers.update(range(int(lo), int(hi or lo) + 1))
    return numbers


def test_the_parser_reads_ranges():
    assert numbers_said_written("Chapters 00–04, 06–08, 12 and 14 are written") == {0, 1, 2, 3, 4, 6, 7, 8, 12, 14}
    assert numbers_said_written("Chapters 00–14 are all written") == set(range(15))


@pytest.mark.parametrize("where", ["intro.md", "chapters/00_generative_models.ipynb"])
def test_the_written_chapters_are_those_in_the_table_of_contents(where):
    path = ROOT / where
    if path.suffix == ".ipynb":
        text = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                         if c["cell_type"] == "markdown")
    else:
        text = path.read_text()
    assert numbers_said_written(text) == chapters_in_toc(), (
        f"{where} names the written chapters; update it to the table of contents")
