"""``python -m paper_repro.toy``: regenerate the toy page's committed study (data/results/toy/)."""
from .demos import main

main()
