"""Build the Jupyter Book: run every notebook of ``_toc.yml`` through Papermill, then build HTML.

Usage (the Makefile calls these)::

    python -m paper_repro.build.book build [--profile auto] [--device cpu]
    python -m paper_repro.build.book refresh-notebooks [NAME ...]   # re-execute notebooks/ in place at `ci`
    python -m paper_repro.build.book collect ../run/data/results     # a sweep's new records + their pages
    python -m paper_repro.build.book screenshot PAGE OUT.png        # headless Chromium screenshot

The stored notebooks in ``notebooks/`` carry the outputs of their default parameters (``profile =
"auto"``: each experiment page loads the committed records of the highest-scale profile that has
any; the toy and theory pages compute at ``ci`` scale); nbval compares the checked cells in CI. The
book never edits them: it executes copies into ``_build/src/notebooks/`` and builds from that staging
tree, so a build leaves the working tree clean. No notebook trains at ``auto``: a build reads
``data/results/`` and creates no run folder.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ..paths import REPO_ROOT
from ..toc import toc_files

BUILD_DIR = REPO_ROOT / "_build"
STAGE_DIR = BUILD_DIR / "src"
OUTPUT_DIR = BUILD_DIR / "book"
HTML_DIR = OUTPUT_DIR / "_build" / "html"
MATHJAX_DIR = BUILD_DIR / "mathjax"
SCREENSHOT_DIR = BUILD_DIR / "screenshots"
SCREENSHOT_PAGES = ("book/intro", "notebooks/codebook_size", "notebooks/toy_demos")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]


def toc_notebooks() -> list[Path]:
    """Notebooks listed in ``_toc.yml``; a listed file that does not exist is an error."""
    out = []
    for f in toc_files():
        if not f.startswith("notebooks/"):
            continue
        p = REPO_ROOT / (f if f.endswith(".ipynb") else f + ".ipynb")
        if not p.exists():
            raise FileNotFoundError(f"_toc.yml lists {f!r} but {p} does not exist")
        out.append(p)
    return out


DEFAULT_PARAMETERS = {"profile": "auto", "device": "cpu"}


def execute_notebook(src: Path, dst: Path, parameters: dict | None = None) -> float:
    """Execute ``src`` with Papermill into ``dst``; returns seconds taken. Parameters equal to the
    notebooks' defaults are not injected (no second parameters cell on the page)."""
    import papermill as pm

    parameters = {k: v for k, v in (parameters or {}).items() if DEFAULT_PARAMETERS.get(k, object()) != v}
    dst.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pm.execute_notebook(str(src), str(dst), parameters=parameters or None, kernel_name="python3",
                        cwd=str(REPO_ROOT), progress_bar=False, log_output=False)
    return time.perf_counter() - t0


def fold_boilerplate(path: Path) -> int:
    """On the page, show the parameters cell and the first call into the package in full; fold the
    source of every later code cell behind a "show code" toggle (Jupyter Book's ``hide-input``),
    its output still shown. A cell tagged ``show-input`` stays open. Returns the cells folded."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    shown = 0
    folded = 0
    for c in code:
        tags = c.metadata.setdefault("tags", [])
        if "parameters" in tags or "injected-parameters" in tags or "remove-cell" in tags:
            continue
        if shown < 1 or "show-input" in tags:
            shown += 1
            continue
        if "hide-input" not in tags and "remove-input" not in tags:
            tags.append("hide-input")
            folded += 1
    nbformat.write(nb, str(path))
    return folded


def strip_volatile_metadata(path: Path) -> None:
    """Remove timings and other run-dependent metadata Papermill writes, so that refreshing a
    notebook whose results did not change leaves git clean."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    pm_meta = nb.metadata.get("papermill", {})
    nb.metadata["papermill"] = {k: v for k, v in pm_meta.items()
                                if k in ("parameters", "default_parameters")}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"  # papermill draws a new random id on every run
    nbformat.write(nb, str(path))


def refresh_notebooks(names: list[str] | None = None) -> None:
    """Re-execute stored notebooks in place with their default parameters (their nbval reference
    outputs); run after committing new records so the pages show them."""
    paths = toc_notebooks() if not names else [
        REPO_ROOT / "notebooks" / (n if n.endswith(".ipynb") else n + ".ipynb") for n in names]
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(p)
        secs = execute_notebook(p, p)
        strip_volatile_metadata(p)
        print(f"refreshed {p.relative_to(REPO_ROOT)} in {secs:.1f} s")


def _tracked_files(root: Path) -> list[Path]:
    """The files under ``root`` that its git checkout tracks (none outside a checkout)."""
    if not root.is_dir():
        return []
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", "."], cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [root / f for f in out.decode().split("\0") if f]


def collect(src_root: Path, profile: str = "cpu", refresh: bool = True) -> list[str]:
    """Copy the records of ``profile`` that a background sweep's results tree (``src_root``, e.g.
    ``../run/data/results``) has and ``data/results/`` lacks, then re-execute the pages that show
    them (and the verdict table). Never replaces a stored record. Where ``src_root`` is in a git
    checkout, the records committed there (what the sweep's checkout started from) are not copied:
    only what the sweep trained, so a record removed here since (e.g. superseded by a fix) stays
    removed. Returns the pages refreshed."""
    from ..experiments.store import copy_results
    from ..experiments.verdicts import pages_reading
    tracked = _tracked_files(Path(src_root))
    written = copy_results(src_root, profile=profile, skip_existing=True, skip=tracked)
    grids = sorted({p.parent.parent.name for p in written})
    for g in grids:
        n = sum(p.parent.parent.name == g for p in written)
        print(f"collected {n} new {profile} record(s) of {g}")
    pages = [p.split("/")[-1] for p in pages_reading(grids)]
    if not written:
        print(f"no new {profile} records in {src_root}")
    elif refresh:
        try:
            refresh_notebooks(pages)
        except BaseException:
            # the records are copied now, so a second collect finds nothing new: say what is left
            print(f"refreshing failed; the records are copied. After fixing, run: python -m "
                  f"paper_repro.build.book refresh-notebooks {' '.join(pages)}", file=sys.stderr)
            raise
    else:
        print("pages to refresh: " + " ".join(pages))
    return pages


def _stage(profile: str, device: str) -> dict:
    """Copy prose pages and executed notebooks into the staging tree."""
    if STAGE_DIR.exists():
        shutil.rmtree(STAGE_DIR)
    STAGE_DIR.mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "book", STAGE_DIR / "book", ignore=shutil.ignore_patterns("_static"))
    # the book's own CSS (Jupyter Book includes every .css of the root _static/ in every page)
    shutil.copytree(REPO_ROOT / "book" / "_static", STAGE_DIR / "_static")
    stage_downloads(STAGE_DIR / "_static" / "downloads")
    shutil.copy2(REPO_ROOT / "_toc.yml", STAGE_DIR / "_toc.yml")
    if not (MATHJAX_DIR / "es5" / "tex-chtml.js").exists():
        raise FileNotFoundError(
            f"MathJax not found under {MATHJAX_DIR}; run `make mathjax` (fetches the npm package mathjax@3)")
    # Served locally so that formulas render offline; not under _static (jupyter-book would inject
    # every .js found there into every page).
    shutil.copytree(MATHJAX_DIR, STAGE_DIR / "_mathjax_static" / "mathjax",
                    ignore=shutil.ignore_patterns("*.map", "sre", "a11y", "*.md"))

    from tqdm.auto import tqdm

    report, failures = {}, []
    notebooks = toc_notebooks()
    for nb in tqdm(notebooks, desc="notebooks", unit="nb", file=sys.stdout):
        dst = STAGE_DIR / nb.relative_to(REPO_ROOT)
        try:
            secs = execute_notebook(nb, dst, {"profile": profile, "device": device})
            fold_boilerplate(dst)          # the page only: the stored notebooks keep their tags
            report[nb.name] = {"seconds": round(secs, 1), "ok": True}
        except Exception as exc:  # keep going: report every failing notebook at the end
            failures.append(f"{nb.name}: {type(exc).__name__}: {str(exc).strip()[-2000:]}")
            report[nb.name] = {"ok": False}
            if not dst.exists():
                shutil.copy2(nb, dst)
    return {"notebooks": report, "failures": failures}


def stage_downloads(folder: Path) -> list[Path]:
    """For every grid with committed records (the profile ``auto`` shows): its runs table as CSV and
    its record files as a zip, named by ``experiments.report.download_files``; the pages link them."""
    import zipfile

    from ..experiments import load_grid, report, store
    from ..experiments.grids import GRIDS

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in GRIDS:
        try:
            df, source = load_grid(name)
        except FileNotFoundError:
            continue
        files = report.download_files(source)
        df.to_csv(folder / files["table"], index=False)
        src = store.results_dir(name, source.profile)
        with zipfile.ZipFile(folder / files["records"], "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(src.glob("*.json")):
                z.write(f, arcname=f"{name}/{source.profile}/{f.name}")
        written += [folder / files["table"], folder / files["records"]]
    return written


def build(profile: str = "auto", device: str = "cpu") -> Path:
    """Run every notebook of the toc at ``profile``, build the HTML book, return its index page."""
    t0 = time.perf_counter()
    # the notebooks' kernels inherit this: any run folder a notebook made would land here (a sweep
    # running beside the build keeps using its own runs/ folder and is not mistaken for the build)
    sentinel = BUILD_DIR / "runs-of-the-build"
    shutil.rmtree(sentinel, ignore_errors=True)
    previous = os.environ.get("PAPER_REPRO_RUNS")
    os.environ["PAPER_REPRO_RUNS"] = str(sentinel)
    try:
        staged = _stage(profile, device)
    finally:
        if previous is None:
            os.environ.pop("PAPER_REPRO_RUNS", None)
        else:
            os.environ["PAPER_REPRO_RUNS"] = previous
    created = _run_folders(sentinel)
    config = staged_config(STAGE_DIR / "_config.yml")
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(STAGE_DIR),
           "--toc", str(STAGE_DIR / "_toc.yml"), "--config", str(config),
           "--path-output", str(OUTPUT_DIR), "-W", "-n", "--keep-going"]
    if (OUTPUT_DIR / "_build").exists():
        shutil.rmtree(OUTPUT_DIR / "_build")
    proc = subprocess.run(cmd, cwd=REPO_ROOT)
    info = {"profile": profile, "device": device, "seconds": round(time.perf_counter() - t0, 1),
            "jupyter_book_exit": proc.returncode, "run_folders_created": created, **staged}
    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUTPUT_DIR / "build_info.json").write_text(json.dumps(info, indent=2))
    if staged["failures"]:
        raise SystemExit("notebooks failed while building the book:\n  " + "\n  ".join(staged["failures"]))
    if created and profile == "auto":
        raise SystemExit("a book build must not train, but it created run folders:\n  " + "\n  ".join(created))
    if proc.returncode != 0:
        raise SystemExit(f"jupyter-book build failed (exit {proc.returncode}); see the warnings above")
    intro = HTML_DIR / "book" / "intro.html"
    if shutil.which("chromium"):      # build artifacts: what a reader sees first on three pages
        for page in SCREENSHOT_PAGES:
            screenshot(HTML_DIR / f"{page}.html", SCREENSHOT_DIR / f"{page.split('/')[-1]}.png")
    print(f"\nBook built in {info['seconds']:.0f} s: {HTML_DIR / 'index.html'}"
          f"\n  open file://{intro}")
    return intro


def staged_config(dst: Path, baseurl: str | None = None) -> Path:
    """``book/_config.yml`` with the published address (``html.baseurl``) from ``baseurl`` or the
    ``BOOK_BASEURL`` environment variable (the publishing workflow sets it); unchanged without one."""
    cfg = yaml.safe_load((REPO_ROOT / "book" / "_config.yml").read_text())
    url = baseurl if baseurl is not None else os.environ.get("BOOK_BASEURL", "")
    if url:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"BOOK_BASEURL must be an http(s) address, got {url!r}")
        cfg.setdefault("html", {})["baseurl"] = url if url.endswith("/") else url + "/"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dst


def _run_folders(root: Path) -> list[str]:
    """Training run folders (anything holding a config, checkpoint or record) under ``root``."""
    if not root.exists():
        return []
    names = ("config.json", "checkpoint.pt", "record.json")
    return sorted({str(p.parent) for n in names for p in root.rglob(n)})


def chromium(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run headless Chromium with the flags that work on these machines (see environment notes)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise FileNotFoundError("chromium not found; `make chromium` installs it (Debian package chromium)")
    with tempfile.TemporaryDirectory() as profile_dir:
        return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", *args],
                              capture_output=True, text=True, timeout=timeout)


def dump_dom(page: Path, budget_ms: int = 8000) -> str:
    """The DOM of ``page`` after scripts (MathJax) ran, as HTML text."""
    proc = chromium(f"--virtual-time-budget={budget_ms}", "--dump-dom", page.resolve().as_uri())
    return proc.stdout


# Runs in the page after load: every pre / table / figure / image of the article must fit the
# article's width; a pre must wrap its text (nothing hidden behind a horizontal scroll); a table may
# scroll inside its own scrollable box. The offenders are written into the DOM for dump_dom.
_OVERFLOW_JS = r"""
window.addEventListener('load', () => setTimeout(() => {
  const main = document.querySelector('article') || document.querySelector('main') || document.body;
  const right = main.getBoundingClientRect().right + 1;
  const scrolls = el => { for (let a = el.parentElement; a && a !== main; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX; if (o === 'auto' || o === 'scroll')
        return a.getBoundingClientRect().right <= right; } return false; };
  const name = el => el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ?
      '.' + el.className.trim().split(/\s+/).join('.') : '') + ': ' + (el.textContent || el.src || '').trim().slice(0, 60);
  const bad = [];
  main.querySelectorAll('pre, table, figure, img, mjx-container[display="true"]').forEach(el => {
    if (el.offsetParent === null && el.tagName !== 'IMG') return;          // hidden
    const r = el.getBoundingClientRect();
    if (el.tagName === 'PRE' && el.scrollWidth > el.clientWidth + 1) bad.push('text does not wrap: ' + name(el));
    else if (r.right > right && !scrolls(el)) bad.push('past the right edge by ' + Math.round(r.right - right) + ' px: ' + name(el));
  });
  const out = document.createElement('pre'); out.id = 'overflow-report'; out.style.display = 'none';
  out.textContent = JSON.stringify(bad); document.body.appendChild(out);
}, 500));
"""


def overflow_report(page: Path, width: int = 1280, budget_ms: int = 8000, with_dom: bool = False):
    """What overflows ``page``'s article at ``width`` px (headless Chromium; see _OVERFLOW_JS); with
    ``with_dom``, ``(report, DOM after scripts ran)``, so one browser run serves both checks."""
    import re

    html = page.read_text(encoding="utf-8")
    probe = page.with_name(f".overflow-probe-{page.name}")
    probe.write_text(html.replace("</body>", f"<script>{_OVERFLOW_JS}</script></body>"), encoding="utf-8")
    try:
        proc = chromium(f"--virtual-time-budget={budget_ms}", f"--window-size={width},900", "--dump-dom",
                        probe.resolve().as_uri())
    finally:
        probe.unlink(missing_ok=True)
    m = re.search(r'<pre id="overflow-report"[^>]*>(.*?)</pre>', proc.stdout, re.S)
    if m is None:
        raise RuntimeError(f"the overflow probe did not run on {page}")
    import html as _html
    bad = json.loads(_html.unescape(m.group(1)))
    if with_dom:
        return bad, proc.stdout[:m.start()] + proc.stdout[m.end():]    # the report's element removed
    return bad


def screenshot(page: Path, out: Path, size: str = "1280,900") -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    chromium("--virtual-time-budget=8000", f"--screenshot={out}", f"--window-size={size}",
             page.resolve().as_uri())
    if not out.exists():
        raise RuntimeError(f"chromium did not write a screenshot of {page}")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m paper_repro.build.book", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="execute the toc's notebooks and build the HTML book")
    b.add_argument("--profile", default=os.environ.get("PROFILE", "auto"))
    b.add_argument("--device", default="cpu")
    r = sub.add_parser("refresh-notebooks", help="re-execute stored notebooks in place (default parameters)")
    r.add_argument("names", nargs="*")
    c = sub.add_parser("collect", help="copy a sweep's new records into data/results and refresh the pages "
                                       "that show them")
    c.add_argument("src", type=Path, help="the sweep's results tree, e.g. ../run/data/results")
    c.add_argument("--profile", default="cpu")
    c.add_argument("--no-refresh", action="store_true", help="copy only; print the pages to refresh")
    s = sub.add_parser("screenshot", help="screenshot a built page")
    s.add_argument("page", type=Path)
    s.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build(args.profile, args.device)
    elif args.cmd == "refresh-notebooks":
        refresh_notebooks(args.names)
    elif args.cmd == "collect":
        collect(args.src, args.profile, refresh=not args.no_refresh)
    else:
        print(screenshot(args.page, args.out))


if __name__ == "__main__":
    main()
