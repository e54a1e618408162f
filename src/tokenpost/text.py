"""Translatable text: a message id with its parameters, English by `str()`, any language by
`translate`.

Every sentence tokenpost shows a person (errors, reasons kept in token states, check advice, log
lines) is a `Text` or starts as one, so it can be shown in the language of whoever reads it, which
is often not known where the sentence is made: a refresh failure recorded by `serve` is read later
by `token status --lang de`. The English source string is the msgid (gettext convention); the
parameters are filled in after translation, so a translation may reorder them.

Invariants:
- `Text(...)`'s first argument is a string literal at every call site (the i18n tests extract it
  with babel and check that the German catalog has it). Text from outside tokenpost — a
  provider's error description, a server reply, a file name — is a parameter, never a msgid;
  `Text.verbatim` wraps such text alone.
- Parameters are plain values (str, int, float, bool, None), other `Text`s, or tuples of them
  (shown joined by "; "). A value with an ``as_text()`` method (every `TokenpostError`, a
  `FieldProblem`) is kept as that `Text`; anything else becomes its `str()`. So a `Text`
  can be persisted as JSON (`to_json`/`from_json`) and rebuilt exactly.
- Rendering never raises: a translation whose placeholders do not fit falls back to English, and a
  msgid whose own placeholders do not fit is shown as it is (the tests keep both from happening).
- No parameter may hold a secret (`Secret` renders as ``***`` in any case).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

Gettext = Callable[[str], str]

Param: TypeAlias = "str | int | float | bool | Text | tuple[Param, ...] | None"

_JOIN: Final = "; "
_TEXT_KEY: Final = "@text"


def _english(message: str) -> str:
    return message


def N_(message: str) -> str:
    """Mark `message` as a msgid for extraction without translating it (gettext's ``N_``)."""
    return message


class Text:
    """A msgid and its parameters. Immutable; equal when msgid and parameters are equal."""

    __slots__ = ("_params", "msgid")

    msgid: str
    _params: tuple[tuple[str, Param], ...]

    def __init__(self, msgid: str, /, **params: object) -> None:
        object.__setattr__(self, "msgid", msgid)
        normalised = tuple((name, _param(value)) for name, value in sorted(params.items()))
        object.__setattr__(self, "_params", normalised)

    @classmethod
    def verbatim(cls, text: str) -> Text:
        """Text from outside tokenpost, shown as it is in every language."""
        return cls("{text}", text=text)

    @property
    def params(self) -> Mapping[str, Param]:
        return dict(self._params)

    def translate(self, gettext: Gettext) -> str:
        """This text in the language of `gettext` (a catalog's ``gettext``)."""
        values = {name: _render(value, gettext) for name, value in self._params}
        for template in (gettext(self.msgid), self.msgid):
            try:
                return template.format(**values)
            except (KeyError, IndexError, ValueError, AttributeError):
                continue
        return self.msgid

    def to_json(self) -> dict[str, Any]:
        """A JSON object for the store: ``{"@text": msgid, "params": {...}}``."""
        return {_TEXT_KEY: self.msgid, "params": {k: _param_json(v) for k, v in self._params}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Text:
        """Rebuild a `to_json` object. Raises TypeError or ValueError when `data` is not one."""
        msgid = data.get(_TEXT_KEY)
        params = data.get("params", {})
        if not isinstance(msgid, str) or not isinstance(params, dict):
            raise TypeError("not a stored text")
        return cls(msgid, **{str(k): _param_from_json(v) for k, v in params.items()})

    @staticmethod
    def is_json(data: object) -> bool:
        return isinstance(data, dict) and _TEXT_KEY in data

    def __str__(self) -> str:
        return self.translate(_english)

    def __repr__(self) -> str:
        args = "".join(f", {name}={value!r}" for name, value in self._params)
        return f"Text({self.msgid!r}{args})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Text):
            return NotImplemented
        return (self.msgid, self._params) == (other.msgid, other._params)

    def __hash__(self) -> int:
        return hash((self.msgid, self._params))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Text is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.msgid, self._params))


def _rebuild(msgid: str, params: tuple[tuple[str, Param], ...]) -> Text:
    return Text(msgid, **dict(params))


def translate(value: object, gettext: Gettext) -> str:
    """Any message-like value in the language of `gettext`: a `Text`, an object with an
    ``as_text()`` (every TokenpostError), a tuple of them, or anything else as its `str()`."""
    return str(_render(_param(value), gettext))


def as_text(value: object) -> Text:
    """`value` as a Text: itself, an error's `text`, or other text shown verbatim."""
    param = _param(value)
    return param if isinstance(param, Text) else Text.verbatim(str(param))


def _param(value: object) -> Param:
    if value is None or isinstance(value, str | int | float | bool | Text):
        return value
    if isinstance(value, tuple | list):
        return tuple(_param(item) for item in value)
    converter = getattr(value, "as_text", None)
    if callable(converter):
        text = converter()
        if isinstance(text, Text):
            return text
    return str(value)


def _render(value: Param, gettext: Gettext) -> object:
    if isinstance(value, Text):
        return value.translate(gettext)
    if isinstance(value, tuple):
        return _JOIN.join(str(_render(item, gettext)) for item in value)
    return value


def _param_json(value: Param) -> Any:
    if isinstance(value, Text):
        return value.to_json()
    if isinstance(value, tuple):
        return [_param_json(item) for item in value]
    return value


def _param_from_json(value: Any) -> Param:
    if Text.is_json(value):
        return Text.from_json(value)
    if isinstance(value, list):
        return tuple(_param_from_json(item) for item in value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError("a stored text has a parameter of an unknown kind")
