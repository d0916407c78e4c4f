"""Build tooling (not the library): the book build (Papermill staging, Jupyter Book, headless
Chromium screenshots). Nothing under ``paper_repro`` outside this subpackage imports it
(``tests/test_repository.py`` checks), so the runtime package never loads papermill or yaml."""
