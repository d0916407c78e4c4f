"""Exit codes of ``python -m paper_repro`` (the README's "what happens when" lists them)."""
OK = 0
FAILED = 1          # a sweep finished with failed runs (each named in its summary)
USAGE = 2           # bad input: a config, a flag, a path, a checkpoint or a run folder in use
NONFINITE = 3       # training diverged (NaN/Inf loss, latents or weights); the last good checkpoint is kept
IO = 74             # EX_IOERR: the disk refused a write (full, read-only); atomic writes left the old files
INTERRUPTED = 75    # EX_TEMPFAIL: checkpointed before a deadline or SIGTERM; rerun with --resume
