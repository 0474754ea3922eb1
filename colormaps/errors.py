"""Exceptions raised by the colormaps package."""

import difflib
from collections.abc import Iterable


class UnknownColormapError(KeyError):
    """No colormap is registered under the requested name.

    A KeyError so that mapping-style callers can keep catching KeyError, but
    with a readable message: KeyError.__str__ would print the repr() of the
    message, quotes and all.
    """

    def __init__(self, name: object, available: Iterable[str]) -> None:
        self.name = name
        self.available = sorted(available)
        super().__init__(name)

    def __str__(self) -> str:
        message = f"unknown colormap {self.name!r}"
        close = (
            difflib.get_close_matches(self.name, self.available, n=3)
            if isinstance(self.name, str)
            else []
        )
        if close:
            message += f"; did you mean {', '.join(close)}?"
        return message + f" (available: {', '.join(self.available)})"


class ColormapDefinitionError(ValueError):
    """A colormap definition (JSON file or dict) is malformed."""
