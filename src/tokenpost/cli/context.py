"""What every command gets from the root options, and how it runs its async work."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

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

    def run(self, work: Callable[[App], Awaitable[T]]) -> T:
        """Open the app (home, store, HTTP), run `work`, close everything."""
        from tokenpost.logs import configure_logging
        from tokenpost.wiring import open_app

        configure_logging(debug=self.debug)

        async def body() -> T:
            async with open_app(self.home, os.environ) as app:
                return await work(app)

        return asyncio.run(body())

    def read(self, work: Callable[[Store], Awaitable[T]]) -> T:
        """Open the store read-only (no HTTP, no writes), run `work`, close it."""
        from tokenpost.logs import configure_logging
        from tokenpost.wiring import open_reader

        configure_logging(debug=self.debug)

        async def body() -> T:
            async with open_reader(self.home, os.environ) as store:
                return await work(store)

        return asyncio.run(body())


def pass_cli(f: Callable[..., T]) -> Callable[..., T]:
    """Decorator: pass the CliContext as the first argument."""
    return click.pass_obj(f)


def quiet_logs() -> None:
    logging.getLogger("tokenpost").setLevel(logging.WARNING)
