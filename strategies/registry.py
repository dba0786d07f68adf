"""The strategy registry: one class per regime, filed at import by a decorator.

As timm's ``register_model`` or Keras' ``keras_export``: each strategy module
decorates its class with :func:`register_strategy`; ``strategies/__init__.py``
imports the four modules explicitly, so the registry (an
:class:`advisor.registry.Registry` keyed by :class:`Regime`) is full once the
package is imported and never written later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from advisor.errors import PlanError
from advisor.plan import Regime
from advisor.registry import Registry

if TYPE_CHECKING:  # pragma: no cover - typing only
    from strategies.base import Strategy

_STRATEGIES: Registry[Regime, type[Strategy]] = Registry(
    "regime", error=PlanError, parse=Regime, sort_key=list(Regime).index,
    message="No strategy for {name} {key!r}. Known: {known}.",
    empty="none (import the strategies package)",
)

StrategyClass = TypeVar("StrategyClass", bound=type)


def register_strategy(regime: Regime | str) -> Callable[[StrategyClass], StrategyClass]:
    """File a strategy class under `regime`.

    Args:
        regime: The regime (or its string value) the class executes.

    Returns:
        A decorator that registers the class and returns it unchanged.

    Raises:
        ValueError: The regime already has a strategy (a programming error).
        PlanError: `regime` names no regime.

    Example:
        >>> import strategies  # its modules file one class per regime, e.g. svm.py:
        >>> strategies.get_strategy("svm").__name__  # @register_strategy(Regime.SVM)
        'SVMStrategy'
        >>> @register_strategy("svm")
        ... class AnotherSVM(strategies.Strategy): ...
        Traceback (most recent call last):
            ...
        ValueError: Regime 'svm' is registered twice.
    """
    return _STRATEGIES.register(Regime.parse(regime))


def list_strategies() -> tuple[str, ...]:
    """Return the registered regime names, in the order of :class:`Regime`.

    Example:
        >>> import strategies
        >>> strategies.list_strategies()
        ('svm', 'last-layer', 'partial', 'full')
    """
    return _STRATEGIES.names()


def get_strategy(regime: Regime | str) -> type[Strategy]:
    """Return the strategy class that executes `regime`.

    Args:
        regime: A :class:`Regime` or its string value (``"last-layer"``).

    Returns:
        The registered class; build it with ``cls(plan=plan, backbone=backbone)``.

    Raises:
        PlanError: Unknown regime, or one without a strategy; the message
            lists the known ones.

    Example:
        >>> import strategies
        >>> strategies.get_strategy("svm").__name__
        'SVMStrategy'
    """
    return _STRATEGIES.get(regime)
