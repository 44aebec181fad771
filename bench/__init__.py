"""Benchmarks: `python -m bench.NAME [--quick]` prints a Markdown table and writes
`bench/results/NAME.json` (quick runs: `bench/results/quick/NAME.json`). See bench/README.md."""
