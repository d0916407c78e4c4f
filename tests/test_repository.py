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
