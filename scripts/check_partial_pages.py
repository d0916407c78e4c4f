"""Execute every grid page against a copy of the committed results with each grid's `ci` records cut
to one run (what a page sees while a background sweep commits a grid run by run), and report which
pages fail. Writes nothing in the checkout: the copy and the executed notebooks go to a temporary
folder. About a minute on two cores.

    .venv/bin/python scripts/check_partial_pages.py [PAGE ...]     # default: every page with a grid
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from paper_repro.build.book import execute_notebook  # noqa: E402
from paper_repro.experiments.store import ENV_VAR, RECORD_FILE  # noqa: E402
from paper_repro.experiments.verdicts import PAGE_MAP  # noqa: E402
from paper_repro.paths import REPO_ROOT, RESULTS_DIR  # noqa: E402


def main(pages: list[str]) -> int:
    pages = pages or [p.split("/")[-1] for p, _, grid in PAGE_MAP if grid] + ["verdicts"]
    tmp = Path(tempfile.mkdtemp(prefix="partial-pages-"))
    root = tmp / "results"
    shutil.copytree(RESULTS_DIR, root)
    for ci in root.glob("*/ci"):
        for rec in sorted(p for p in ci.iterdir() if RECORD_FILE.fullmatch(p.name))[1:]:
            rec.unlink()
            rec.with_suffix(".png").unlink(missing_ok=True)
    os.environ[ENV_VAR] = str(root)
    failed = []
    for name in pages:
        try:
            execute_notebook(REPO_ROOT / "notebooks" / f"{name}.ipynb", tmp / f"{name}.ipynb")
            print(f"ok    {name}", flush=True)
        except Exception as e:  # papermill's error names the failing cell's exception
            failed.append(name)
            lines = [ln for ln in str(e).splitlines() if "Error" in ln]
            print(f"FAIL  {name}: {' | '.join(lines)[:400]}", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
