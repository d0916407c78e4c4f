"""The book's table of contents (``_toc.yml``, Jupyter Book 1.x) as data: the files it lists, and its
parts with their captions. Read by the build (which notebooks to execute) and by the pages (the
introduction's verdict table comes by part), so both follow the one file."""
from __future__ import annotations

from pathlib import Path

import yaml

from .paths import REPO_ROOT

TOC = REPO_ROOT / "_toc.yml"


def _toc_walk(entries, files: list) -> list:
    for e in entries or []:
        if "file" in e:
            files.append(e["file"])
        _toc_walk(e.get("sections"), files)
        for part in e.get("parts", []):
            _toc_walk(part.get("chapters"), files)
    return files


def toc_files(toc_path: Path = TOC) -> list[str]:
    """Every file named in the table of contents (root first), as written there (no suffix)."""
    toc = yaml.safe_load(toc_path.read_text())
    files = _toc_walk(toc.get("chapters"), [toc["root"]])
    for part in toc.get("parts", []):
        _toc_walk(part.get("chapters"), files)
    return files


def toc_parts(toc_path: Path = TOC) -> list[tuple[str, list[str]]]:
    """The table of contents' parts in order: (caption, the files of its chapters and their sections)."""
    toc = yaml.safe_load(toc_path.read_text())
    return [(part.get("caption", ""), _toc_walk(part.get("chapters"), [])) for part in toc.get("parts", [])]
