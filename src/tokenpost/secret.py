"""A value that must never be shown: tokens, codes, verifiers, passwords, keys.

`Secret` prints as ``***`` in `str`, `repr` and f-strings, refuses pickling, and compares in
constant time. The only way to the value is `reveal()`, so every place that puts a secret on a
wire or into a cipher is a visible, greppable call.
"""

from __future__ import annotations

import hmac
from typing import Final, NoReturn

REDACTED: Final = "***"


class Secret:
    """An immutable string whose value is shown only through `reveal()`."""

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        """Return the value. Call only where it goes onto a wire or into a cipher."""
        return self._value

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        # Equal secrets must hash equal; hashing the value would let a dict probe leak timing,
        # so all secrets share one bucket. Secrets are never dict keys in tokenpost anyway.
        return 0

    # Immutable: a copy is the same object; pickling (which would write the value) is refused.
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")


def reveal_optional(secret: Secret | None) -> str | None:
    """`secret.reveal()`, or None."""
    return None if secret is None else secret.reveal()
