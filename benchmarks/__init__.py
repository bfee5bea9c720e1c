"""convtrain's benchmarks: side-by-side speed measurements, each reported as a ratio.

    python -m benchmarks.run --quick          # every CPU benchmark, small sizes (minutes)
    python -m benchmarks.run --only overhead  # overhead, tutorial, accuracy, formats, zoo, airbench

See BENCHMARKS.md at the repository root for the recorded tables and how they were made.
"""
