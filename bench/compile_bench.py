"""Compile speed: lint + plan against the front end alone, in-process (median of N).

    python bench/compile_bench.py [--runs 5] [--files 1000] [--seed 1]

Generates, with bench/lint_bench.py's generator, FILES workflow files of 10 phases each
(dependsOn chains, jobs, file triggers, batches; 10,000 phases by default) in a temporary
folder. Then times, in this process,
  (a) the front end: `lint_files(files, jobs=1)`,
  (b) the compiler:  `compile_paths([folder])` (file search, lint, FL503 key check, plan),
and prints the medians and b/a (target <= 1.5).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lint_bench  # noqa: E402  (bench/lint_bench.py: the corpus generator)

from flowlord.compiler import compile_paths, lint_files  # noqa: E402
from flowlord.compiler.files import find_workflow_files  # noqa: E402


def timed(function, runs: int) -> tuple[float, object]:
    """Median seconds of `runs` calls after one warm-up call, and the last result."""
    result = function()
    samples = []
    for _ in range(runs):
        result = None  # free the previous result first: two alive at once slow the next run
        start = time.perf_counter()
        result = function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each (default 5)")
    parser.add_argument("--files", type=int, default=1000, help="workflow files (10 phases each)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="flowlord-compile-bench-") as tmp:
        lint_bench.CORPUS = Path(tmp)  # generate() writes below CORPUS, not into bench/corpus
        folder, _ = lint_bench.generate(args.files, args.seed)
        files = [path for path, _ in find_workflow_files([str(folder)])]
        phases = args.files * lint_bench.PHASES_PER_FILE
        print(f"{len(files)} files, {phases} phases (seed {args.seed}); median of {args.runs}; "
              f"{sys.executable}")

        front, linted = timed(lambda: lint_files(files, jobs=1), args.runs)
        print(f"(a) front end: lint_files(jobs=1)         median {front:7.3f} s")
        if linted.diagnostics:
            print(f"the corpus is not clean: {len(linted.diagnostics)} diagnostics, e.g.",
                  *(d.message for d in linted.diagnostics[:5]), sep="\n    ")
            return 1
        del linted
        whole, compiled = timed(lambda: compile_paths([str(folder)]), args.runs)
        print(f"(b) lint + plan: compile_paths            median {whole:7.3f} s")
        if compiled.plan is None:
            print("no plan: the compilation has errors")
            return 1
        planned = sum(len(w.phases) for w in compiled.plan.workflows)
        assert planned == phases, (planned, phases)
    print(f"b/a = {whole / front:.2f}  (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
