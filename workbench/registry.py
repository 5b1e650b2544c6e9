"""One small registry for every pluggable family (kinds, models, losses, encoders, ...)."""
from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, Iterator, TypeVar

from workbench.errors import NotFoundError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name to a builder. ``create`` only dispatches; builders do the work.

    >>> LOSSES = Registry("loss")
    >>> @LOSSES.register("mse")
    ... def mse(**kw): ...
    """

    def __init__(self, family: str):
        self.family = family
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def add(builder: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries and self._entries[name] is not builder:
                raise ValueError(f"{self.family} '{name}' is already registered")
            self._entries[name] = builder
            return builder

        return add

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._entries[name]
        except KeyError:
            raise NotFoundError(
                f"{self.family} '{name}' not found. Available: {self.list()}"
            ) from None

    def create(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def list(self) -> list[str]:
        return sorted(self._entries)

    def names(self) -> list[str]:
        """The names in the order they were registered: a line lists its default first."""
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._entries)


class RegistryNames:
    """The names in a registry that lives in another module, read when first used.

    A config field that names a registered thing takes these as its ``choices``, so the
    valid values are always the registered ones. The config sits at the bottom of its line
    and cannot import the module that fills the registry (that module imports the config),
    so the registry is named, ``"workbench.lines.geolocator.models:HEADS"``, and imported on
    the first membership test or listing, by which time both modules exist.
    """

    def __init__(self, ref: str):
        module, _, attr = ref.partition(":")
        if not module or not attr:
            raise ValueError(f"expected 'package.module:REGISTRY', got {ref!r}")
        self.ref, self._module, self._attr = ref, module, attr

    @property
    def registry(self) -> Registry:
        return getattr(importlib.import_module(self._module), self._attr)

    def __iter__(self) -> Iterator[str]:
        return iter(self.registry.names())

    def __contains__(self, name: object) -> bool:
        return name in self.registry

    def __len__(self) -> int:
        return len(self.registry)

    def __repr__(self) -> str:
        return f"RegistryNames({self.ref!r})"
