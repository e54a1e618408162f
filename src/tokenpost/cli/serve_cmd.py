"""`tokenpost serve`: the long-running service (tokens, POP schedules, alerts, health lines)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import click

from tokenpost.cli.context import CliContext, pass_cli
from tokenpost.cli.translated import command


@command()
@click.option(
    "--refresh-margin",
    type=click.IntRange(0, 86400),
    default=600,
    show_default=True,
    help="Refresh this many seconds before expiry (Microsoft refuses tokens ~10 min early).",
)
@click.option(
    "--health-interval",
    type=click.IntRange(10, 86400),
    default=300,
    show_default=True,
    help="Log one health line per setting this often (seconds).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line, with setting, state and times as fields.",
)
@click.option(
    "--allow-plaintext",
    is_flag=True,
    help="Allow security 'none' for mail servers on loopback (never for other hosts).",
)
@pass_cli
def serve(
    ctx: CliContext,
    refresh_margin: int,
    health_interval: int,
    log_format: str,
    allow_plaintext: bool,
) -> None:
    """Keep tokens fresh, finish pending device authorizations, receive on each POP setting's
    schedule and send alerts, until stopped (SIGTERM, Ctrl-C)."""
    from tokenpost.logs import configure_logging
    from tokenpost.services.daemon import Daemon
    from tokenpost.wiring import open_app

    configure_logging(debug=ctx.debug, json_lines=log_format == "json")
    logging.getLogger("tokenpost").setLevel(logging.DEBUG if ctx.debug else logging.INFO)
    log = logging.getLogger("tokenpost.serve")

    async def body() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with open_app(ctx.home, os.environ) as app:
            app.refresher.margin = refresh_margin
            app.alerter.lang = ctx.lang
            log.info("serving home %s", app.home)
            daemon = Daemon(
                app.store,
                app.clock,
                app.scheduler(),
                app.receiver(),
                app.alerter,
                allow_plaintext=allow_plaintext,
                health_interval=health_interval,
            )
            await daemon.run(stop)

    asyncio.run(body())
