"""Repository basics a reader expects: the licence pyproject names, a citation file that parses and
names the paper's authors."""
import tomllib

import yaml

from paper_repro.paths import REPO_ROOT


def test_license_file_matches_pyproject():
    meta = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"]["text"] == "MIT"
    text = (REPO_ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_citation_file_names_the_paper_and_its_authors():
    cff = yaml.safe_load((REPO_ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"].startswith("1.2") and cff["license"] == "MIT"
    paper = cff["preferred-citation"]
    assert paper["title"].startswith("Beyond Stationarity")
    assert [a["family-names"] for a in paper["authors"]] == ["Lu", "Koyun", "Guo", "Zhu", "Alili", "Gurcan"]


def test_the_library_never_imports_its_build_tooling():
    """paper_repro.build (Papermill staging, Jupyter Book, Chromium) is tooling: no module of the
    runtime package imports it, so `import paper_repro...` never needs papermill or a browser."""
    import ast

    offenders = []
    for path in (REPO_ROOT / "paper_repro").rglob("*.py"):
        if "build" in path.relative_to(REPO_ROOT / "paper_repro").parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ("." * node.level) + (node.module or "")
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            if any(n.startswith(("paper_repro.build", ".build", "..build")) for n in names):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert not offenders, f"the runtime package imports the build tooling at {offenders}"
    assert (REPO_ROOT / "paper_repro" / "build" / "book.py").is_file()


def test_the_book_says_how_to_cite_with_the_citation_files_authors():
    cff = yaml.safe_load((REPO_ROOT / "CITATION.cff").read_text())
    intro = (REPO_ROOT / "book" / "intro.md").read_text()
    assert "## How to cite" in intro and "```bibtex" in intro
    for a in cff["preferred-citation"]["authors"]:
        assert f"{a['family-names']}, {a['given-names']}" in " ".join(intro.split())
    assert cff["version"] in intro


def test_the_readme_map_names_every_notebook_of_the_book():
    """The README's "paper artifact -> page" map is prose, not computed: this keeps it complete."""
    import re

    from paper_repro.build.book import toc_notebooks
    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"## Map: paper artifact → page\n(.*?)\n## ", readme, re.S)
    assert block, "README has no 'Map: paper artifact → page' section"
    named = set(re.findall(r"`notebooks/(\w+)\.ipynb`", block.group(1)))
    assert {p.stem for p in toc_notebooks()} - named == set()



def test_the_toc_parts_hold_every_page_but_the_root_once(tmp_path):
    from paper_repro.toc import toc_files, toc_parts
    parts = toc_parts()
    assert parts and all(caption for caption, _ in parts)
    listed = [f for _, files in parts for f in files]
    assert sorted(listed) == sorted(toc_files()[1:]) and len(set(listed)) == len(listed)
    toc = tmp_path / "_toc.yml"     # nested sections count in their part
    toc.write_text("format: jb-book\nroot: intro\nparts:\n  - caption: A\n    chapters:\n      - file: a\n"
                   "        sections:\n          - file: a1\n  - caption: B\n    chapters:\n      - file: b\n")
    assert toc_parts(toc) == [("A", ["a", "a1"]), ("B", ["b"])]
    assert toc_files(toc) == ["intro", "a", "a1", "b"]
