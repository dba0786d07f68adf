"""One registry for things filed under a name at import: backbones, strategies.

As timm's ``register_model`` or Keras' ``keras_export``: a module decorates
what it defines with :meth:`Registry.register`, the package imports its modules
explicitly, and the registry is full once the package is imported and never
written later. Unlike timm's bare ``KeyError``, an unknown key fails with the
caller's error class and a message listing the known keys (as keras-hub's
preset errors do).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from enum import Enum
from typing import Any, Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Entry = TypeVar("Entry")

#: The default message of an unknown key; ``{name}``, ``{key}`` and ``{known}`` are filled in.
UNKNOWN_MESSAGE = "Unknown {name} {key!r}. Known: {known}."


def _shown(key: Any) -> Any:
    """Return `key` as users type it: an enum by its value (``"last-layer"``), the rest as is."""
    return key.value if isinstance(key, Enum) else key


class Registry(Generic[Key, Entry]):
    """A closed map from keys to objects, filled by a decorator.

    Args:
        name: What a key names, in messages (``"backbone"``, ``"regime"``).
        error: The exception class raised for an unknown key. Defaults to
            `LookupError`.
        message: The unknown-key message, a format string with ``{name}``,
            ``{key}`` (the key as asked, enums by value) and ``{known}`` (the
            known names, comma-separated). Defaults to
            ``"Unknown {name} {key!r}. Known: {known}."``.
        parse: Turns a key as asked (e.g. the string ``"svm"``) into the stored
            key (``Regime.SVM``); a `ValueError` it raises means an unknown key.
            Defaults to `None` (keys are used as given).
        sort_key: Orders :meth:`keys` and :meth:`names` (``str`` for
            alphabetical). Defaults to `None` (the order of registration).
        empty: What ``{known}`` says while nothing is registered. Defaults to
            `"none"`.

    Example:
        >>> heads = Registry("head", error=KeyError)
        >>> @heads.register("linear")
        ... def linear_head(units):
        ...     return f"Dense({units})"
        >>> heads.get("linear")(10)
        'Dense(10)'
        >>> heads.names()
        ('linear',)
        >>> heads.get("mlp")
        Traceback (most recent call last):
        ...
        KeyError: "Unknown head 'mlp'. Known: linear."
    """

    def __init__(
        self,
        name: str,
        *,
        error: type[Exception] = LookupError,
        message: str = UNKNOWN_MESSAGE,
        parse: Callable[[Any], Key] | None = None,
        sort_key: Callable[[Key], Any] | None = None,
        empty: str = "none",
    ) -> None:
        self.name = name
        self._error = error
        self._message = message
        self._parse = parse
        self._sort_key = sort_key
        self._empty = empty
        self._entries: dict[Key, Entry] = {}

    def register(self, key: Any) -> Callable[[Entry], Entry]:
        """Return a decorator that files an object under `key` and returns it unchanged.

        Args:
            key: The key (parsed with ``parse`` when the registry has one).

        Returns:
            The decorator.

        Raises:
            ValueError: `key` is registered already (a programming error).

        Example:
            >>> optimizers = Registry("optimizer")
            >>> @optimizers.register("sgd")
            ... class SGD: ...
            >>> optimizers.register("sgd")(object)
            Traceback (most recent call last):
            ...
            ValueError: Optimizer 'sgd' is registered twice.
        """
        stored = self._parse(key) if self._parse is not None else key

        def wrap(entry: Entry) -> Entry:
            if stored in self._entries:
                raise ValueError(
                    f"{self.name[:1].upper()}{self.name[1:]} {_shown(stored)!r} is registered twice.")
            self._entries[stored] = entry
            return entry

        return wrap

    def get(self, key: Any) -> Entry:
        """Return the object filed under `key`.

        Args:
            key: A registered key, or what ``parse`` turns into one.

        Returns:
            The registered object.

        Raises:
            Exception: The registry's ``error`` class, for an unknown key; the
                message lists the known names.

        Example:
            >>> colours = Registry("colour", error=ValueError)
            >>> _ = colours.register("red")(0xFF0000)
            >>> hex(colours.get("red"))
            '0xff0000'
        """
        try:
            stored = self._parse(key) if self._parse is not None else key
            return self._entries[stored]
        except (ValueError, KeyError, TypeError):
            known = ", ".join(str(name) for name in self.names()) or self._empty
            raise self._error(
                self._message.format(name=self.name, key=_shown(key), known=known)) from None

    def keys(self) -> tuple[Key, ...]:
        """Return the stored keys, ordered by ``sort_key`` (else as registered)."""
        if self._sort_key is None:
            return tuple(self._entries)
        return tuple(sorted(self._entries, key=self._sort_key))

    def names(self) -> tuple[Any, ...]:
        """Return the keys as users type them (enums by value), in :meth:`keys` order."""
        return tuple(_shown(key) for key in self.keys())

    def __contains__(self, key: object) -> bool:
        try:
            stored = self._parse(key) if self._parse is not None else key
        except (ValueError, TypeError):
            return False
        return stored in self._entries

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, keys={list(self.names())})"
