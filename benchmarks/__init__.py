"""growclip's benchmarks: run from the repository root as `python -m benchmarks.<name>`; their
finished runs' summaries live under `benchmarks/results/`, and `python -m benchmarks.results`
writes RESULTS.md from them."""
