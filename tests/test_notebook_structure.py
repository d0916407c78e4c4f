"""Static checks of the stored notebooks: the conventions nbval and the book rely on."""
import re
from pathlib import Path

import nbformat
import pytest

from paper_repro.build.book import toc_notebooks
from paper_repro.paths import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def test_every_notebook_is_in_the_toc():
    assert set(NOTEBOOKS) == set(toc_notebooks()), "a notebook is missing from _toc.yml (or listed but absent)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_conventions(path: Path):
    nb = nbformat.read(str(path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one code cell must be tagged `parameters`"
    assert re.search(r"^profile\s*=", params[0].source, re.M) and re.search(r"^device\s*=", params[0].source, re.M)
    assert code.index(params[0]) == 0, "the parameters cell must be the first code cell"
    checked = [c for c in code if c.source.startswith("# NBVAL_CHECK_OUTPUT")]
    assert checked, "no `# NBVAL_CHECK_OUTPUT` cell: nbval would check nothing in this notebook"
    for c in checked:
        assert c.get("outputs"), "a checked cell has no stored output (run `make notebooks`)"
    for c in nb.cells:
        if c.cell_type == "markdown":
            # display math must stand alone between blank lines, or MyST pairs the $ signs wrongly
            for m in re.finditer(r"\$\$", c.source):
                before, after = c.source[:m.start()], c.source[m.end():]
                opening = before.count("$$") % 2 == 0
                if opening:
                    assert before == "" or before.endswith("\n\n"), f"$$ not preceded by a blank line: {c.source[:80]!r}"
                else:
                    assert after == "" or after.startswith("\n\n"), f"$$ not followed by a blank line: {c.source[:80]!r}"
