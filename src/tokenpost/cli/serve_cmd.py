"""`tokenpost serve`: the long-running service (for now: the token scheduler)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import click

from tokenpost.cli.context import CliContext, pass_cli


@click.command()
@click.option(
    "--refresh-margin",
    type=click.IntRange(0, 86400),
    default=600,
    show_default=True,
    help="Refresh this many seconds before expiry (Microsoft refuses tokens ~10 min early).",
)
@pass_cli
def serve(ctx: CliContext, refresh_margin: int) -> None:
    """Keep tokens fresh and finish pending device authorizations until stopped (SIGTERM,
    Ctrl-C)."""
    from tokenpost.logs import configure_logging
    from tokenpost.wiring import open_app

    configure_logging(debug=ctx.debug)
    logging.getLogger("tokenpost").setLevel(logging.DEBUG if ctx.debug else logging.INFO)
    log = logging.getLogger("tokenpost.serve")

    async def body() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with open_app(ctx.home, os.environ) as app:
            app.refresher.margin = refresh_margin
            log.info("serving home %s", app.home)
            async with asyncio.TaskGroup() as group:
                work = group.create_task(app.scheduler().run())
                await stop.wait()
                log.info("stopping")
                work.cancel()

    asyncio.run(body())
