"""Errors whose remedy is one of the raising function's own arguments, so that each front end words it.

The library says what to do in terms of its arguments (``resume=True``); the command line says
``--resume``, the napari widget "choose Resume". An :class:`ArgumentRemedy` keeps the facts apart from
the words: a :class:`Message`, a template and its values, the arguments among them as
:class:`Argument`. ``str()`` spells those the Python way; :meth:`ArgumentRemedy.worded` with a front
end's own speller. :func:`warn` logs such a message, for a log handler to word it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar


@dataclass(frozen=True)
class Argument:
    """An argument of the function that raised, and the value that fixes the error (or the value given,
    where the message names what was passed)."""

    name: str
    value: object = True

    def __str__(self) -> str:
        return f"{self.name}={self.value!r}"


#: spells an :class:`Argument` for one front end (``str``: the Python way, ``resume=True``)
Speller = Callable[[Argument], str]
_E = TypeVar("_E", bound="ArgumentRemedy")


@dataclass(frozen=True)
class Message:
    """``template % values`` with each :class:`Argument` among ``values`` spelled by a front end
    (``template`` holds no user text: paths go into ``values``). ``str()`` is the Python wording."""

    template: str
    values: tuple = ()

    @property
    def arguments(self) -> tuple[Argument, ...]:
        """The arguments that the message names."""
        return tuple(v for v in self.values if isinstance(v, Argument))

    def worded(self, spell: Speller) -> str:
        """The message with its arguments spelled by ``spell``."""
        return self.template % tuple(spell(v) if isinstance(v, Argument) else v for v in self.values)

    def __str__(self) -> str:
        return self.worded(str)


class ArgumentRemedy(Exception):
    """Mixin of the errors below; create them with :meth:`of`. ``str()`` is the Python wording,
    :meth:`worded` a front end's."""

    message: Message | None = None

    @classmethod
    def of(cls: type[_E], template: str, *values: object) -> _E:
        """The error ``template % values`` (see :class:`Message`)."""
        message = Message(template, values)
        exc = cls(str(message))
        exc.message = message
        return exc

    @property
    def arguments(self) -> tuple[Argument, ...]:
        """The arguments that the message names."""
        return self.message.arguments if self.message else ()

    def worded(self, spell: Speller) -> str:
        """The message with its arguments spelled by ``spell``."""
        return self.message.worded(spell) if self.message else str(self)

    def reworded(self: _E, spell: Speller) -> _E:
        """The same error (type and facts) with its message worded by ``spell``."""
        exc = type(self)(self.worded(spell))
        exc.message = self.message
        return exc


def warn(logger: logging.Logger, template: str, *values: object) -> None:
    """Log the warning ``template % values`` in Python words; the record's ``remedy`` attribute keeps
    the :class:`Message`, for a handler that words it its own way (the record's args may be turned into
    strings on the way, as napari's test support does)."""
    message = Message(template, values)
    logger.warning("%s", message, extra={"remedy": message})


class OutputExists(ArgumentRemedy, FileExistsError):
    """The output exists and the call asked neither to resume it nor to replace it."""


class CannotResume(ArgumentRemedy, ValueError):
    """The output cannot be resumed: not a napari-scoredvi store, or made with other parameters."""


class RunFailed(ArgumentRemedy, RuntimeError):
    """A slice failed; the finished slices are kept and a resumed run does the rest."""


class BadArgument(ArgumentRemedy, ValueError):
    """An argument does not fit the input (e.g. ``axes`` against the file's metadata)."""
