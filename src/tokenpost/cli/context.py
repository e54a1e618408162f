"""What every command gets from the root options, and how it runs its async work."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from gettext import NullTranslations

    from tokenpost.ports import Store
    from tokenpost.wiring import App

T = TypeVar("T")


@dataclass
class CliContext:
    home: Path | None
    lang: str
    debug: bool

    @property
    def translations(self) -> NullTranslations:
        from tokenpost.i18n import translator

        return translator(self.lang)

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def run(self, work: Callable[[App], Awaitable[T]], *, writes: bool = True) -> T:
        """Open the app (home, store, HTTP), run `work`, close everything.

        A command that changes something is refused on another user's home (`adapters.home`);
        `writes=False` is for commands that only list or show, which may read such a home."""
        from tokenpost.logs import configure_logging
        from tokenpost.wiring import open_app

        configure_logging(debug=self.debug)

        async def body() -> T:
            async with open_app(self.home, os.environ, writing=writes) as app:
                return await work(app)

        import asyncio

        return asyncio.run(body())

    def read(self, work: Callable[[Store], Coroutine[Any, Any, T]]) -> T:
        """Open the store read-only (no HTTP, no writes), run `work`, close it.

        On the default SQLite store the reader never suspends, so `work` is driven without an
        event loop: importing asyncio alone costs a fifth of `token status`'s start-up budget.
        """
        from tokenpost.wiring import open_fast_reader, open_reader

        if self.debug:  # reading logs nothing else; logging costs start-up time
            from tokenpost.logs import configure_logging

            configure_logging(debug=True)
        reader = open_fast_reader(self.home, os.environ)
        if reader is not None:
            try:
                return _run_without_loop(work(reader))
            finally:
                _run_without_loop(reader.close())

        async def body() -> T:
            async with open_reader(self.home, os.environ) as store:
                return await work(store)

        import asyncio

        return asyncio.run(body())


def _run_without_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (it awaits nothing that waits for I/O)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("a coroutine meant to run without an event loop suspended")


def pass_cli(f: Callable[..., T]) -> Callable[..., T]:
    """Decorator: pass the CliContext as the first argument."""
    return click.pass_obj(f)
