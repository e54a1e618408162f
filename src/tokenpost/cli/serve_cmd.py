"""`tokenpost serve`: the long-running service (tokens, POP schedules, alerts, health lines) and
the device's web page, in one asyncio process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

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
@click.option(
    "--listen",
    default="127.0.0.1:8025",
    show_default=True,
    metavar="HOST:PORT",
    help="Address of the web page. Plain HTTP on loopback only; other addresses need TLS.",
)
@click.option(
    "--tls-cert", metavar="FILE", help="Certificate chain (PEM): the web page uses HTTPS."
)
@click.option("--tls-key", metavar="FILE", help="Private key (PEM) of --tls-cert.")
@click.option("--no-web", is_flag=True, help="Run without the web page.")
@pass_cli
def serve(
    ctx: CliContext,
    *,
    refresh_margin: int,
    health_interval: int,
    log_format: str,
    allow_plaintext: bool,
    listen: str,
    tls_cert: str | None,
    tls_key: str | None,
    no_web: bool,
) -> None:
    """Keep tokens fresh, finish pending device authorizations, receive on each POP setting's
    schedule and send alerts, and serve the web page, until stopped (SIGTERM, Ctrl-C)."""
    from tokenpost.logs import configure_logging
    from tokenpost.services.daemon import Daemon
    from tokenpost.wiring import open_app

    _ = ctx.gettext
    web_listen = None
    if not no_web:
        from tokenpost.web.server import Listen, check_plain_http

        # Bad usage ends here, before the home or the store is opened.
        web_listen = Listen.parse(listen)
        check_plain_http(web_listen, tls=bool(tls_cert or tls_key))

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
            receiver = app.receiver()
            daemon = Daemon(
                app.status_cache,
                app.clock,
                app.scheduler(),
                receiver,
                app.alerter,
                allow_plaintext=allow_plaintext,
                health_interval=health_interval,
            )
            web = None
            if web_listen is not None:
                from tokenpost.web.app import create_app
                from tokenpost.web.config import WebConfig
                from tokenpost.web.server import start

                config = WebConfig(next_check=receiver.due_at, allow_plaintext=allow_plaintext)
                api = create_app(app, config)
                web = await start(api, web_listen, tls_cert=tls_cert, tls_key=tls_key)
                click.echo(_("Web page: {url}").format(url=web.url))
                log.info("web page at %s", web.url)
                password = await app.accounts.ensure_first_admin()
                if password is not None:
                    # Shown once, here only: never in the log.
                    line = _(
                        "Web administrator: admin, password: {password} (shown once; change it "
                        "with 'tokenpost admin passwd admin')"
                    )
                    click.echo(line.format(password=password.reveal()))
                sys.stdout.flush()
            try:
                await daemon.run(stop)
            finally:
                if web is not None:
                    await web.stop()

    asyncio.run(body())
