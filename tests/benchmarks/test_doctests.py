"""The examples in the advice-quality benchmark's docstrings run (the suite's doctests cover the package only)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import benchmarks.advice_quality as advice_quality

MODULES = sorted(m.name for m in pkgutil.iter_modules(advice_quality.__path__, "benchmarks.advice_quality.")
                 if m.name.rsplit(".", 1)[-1] != "__main__")


@pytest.mark.parametrize("name", MODULES)
def test_the_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
