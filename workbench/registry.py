"""One small registry for every pluggable family (kinds, models, losses, encoders, ...)."""
from __future__ import annotations

from typing import Any, Callable, Generic, TypeVar

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

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
