"""The publishing path: the CI workflow that builds the book with the README's command and deploys
it to static pages. It cannot run here, so its structure is checked; the local build is the reference."""
from __future__ import annotations

import re

import pytest
import yaml

from paper_repro.build.book import staged_config
from paper_repro.paths import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "book.yml"


def _workflow() -> dict:
    wf = yaml.safe_load(WORKFLOW.read_text())
    wf["on"] = wf.pop(True, wf.get("on"))          # YAML 1.1 reads the key `on` as True
    return wf


def _readme_build_command() -> str:
    block = re.search(r"## The two commands\s+```bash\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)
    assert block, "README has no 'The two commands' block"
    first = block.group(1).strip().splitlines()[0]
    return first.split("#")[0].strip()


def test_workflow_builds_with_the_readme_command_on_pushes_to_main():
    wf = _workflow()
    assert wf["on"]["push"]["branches"] == ["main"]
    build = wf["jobs"]["build"]
    runs = [s.get("run", "") for s in build["steps"]]
    assert _readme_build_command() == "make book"
    assert any(r.strip() == _readme_build_command() for r in runs), "the workflow does not run the README's build command"
    uploads = [s for s in build["steps"] if str(s.get("uses", "")).startswith("actions/upload-pages-artifact")]
    assert uploads and uploads[0]["with"]["path"] == "_build/book/_build/html"
    from paper_repro.build.book import HTML_DIR
    assert (REPO_ROOT / uploads[0]["with"]["path"]).resolve() == HTML_DIR.resolve()


def test_workflow_deploys_after_the_build_with_pages_permissions():
    wf = _workflow()
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert any(str(s.get("uses", "")).startswith("actions/deploy-pages") for s in deploy["steps"])
    assert wf["permissions"]["pages"] == "write" and wf["permissions"]["id-token"] == "write"
    assert "BOOK_BASEURL" in wf["jobs"]["build"]["env"]


def test_base_url_reaches_the_book_config_and_is_validated(tmp_path, monkeypatch):
    monkeypatch.delenv("BOOK_BASEURL", raising=False)
    plain = yaml.safe_load(staged_config(tmp_path / "a.yml").read_text())
    assert "baseurl" not in plain.get("html", {})
    assert plain == yaml.safe_load((REPO_ROOT / "book" / "_config.yml").read_text())
    monkeypatch.setenv("BOOK_BASEURL", "https://example.org/paper-repro")
    cfg = yaml.safe_load(staged_config(tmp_path / "b.yml").read_text())
    assert cfg["html"]["baseurl"] == "https://example.org/paper-repro/"
    with pytest.raises(ValueError, match="BOOK_BASEURL"):
        staged_config(tmp_path / "c.yml", baseurl="example.org")
