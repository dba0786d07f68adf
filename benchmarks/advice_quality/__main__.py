"""``python -m benchmarks.advice_quality``: run the suite (see the package docstring)."""

from benchmarks.advice_quality.cli import main

if __name__ == "__main__":
    main()
