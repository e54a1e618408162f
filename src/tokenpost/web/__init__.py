"""The device's web page: `tokenpost serve` runs it beside the daemon (entry-point layer).

`app.create_app(app, config)` builds the FastAPI application from an opened `wiring.App` and a
`config.WebConfig`; `server` runs it under uvicorn on the running event loop. Pages are
server-rendered (Jinja2) and work without JavaScript; `static/live.js` only updates the state
labels and countdowns in place.
"""
