"""Running the API under uvicorn, with the demo banner and a graceful, 503-answering shutdown."""

from __future__ import annotations

import gc
import signal
import threading
from types import FrameType

import click
import structlog
import uvicorn

from hpcplane import __version__, logs
from hpcplane.app import Admission, create_app
from hpcplane.config import Settings
from hpcplane.demo import banner, ensure_demo
from hpcplane.services import agreement
from hpcplane.serving import uvicorn_config
from hpcplane.wiring import Services


class _Server(uvicorn.Server):
    """uvicorn, but new calls get ServiceUnavailable from the moment a shutdown signal arrives."""

    def __init__(self, config: uvicorn.Config, admission: Admission) -> None:
        super().__init__(config)
        self._admission = admission

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._admission.shutting_down = True
        super().handle_exit(sig, frame)


def run_server(settings: Settings, services: Services) -> None:
    logs.configure(settings.log_level, settings.log_format)
    app = create_app(services, threads=settings.api_threads)
    agreement.record_api_settings(services.db, settings)
    demo = (
        ensure_demo(services) if (settings.demo if settings.demo is not None else settings.embedded) else None
    )
    store = (
        "sqlite " + str(settings.effective_database_url[len("sqlite:///") :])
        if services.db.is_sqlite
        else (services.db.url.render_as_string(hide_password=True))
    )
    scheme = "https" if settings.ssl_certfile else "http"
    click.echo(f"hpcplane {__version__} on {scheme}://{settings.host}:{settings.port}  (store: {store})")
    if demo is not None:
        click.echo(banner(demo, settings.host, settings.port, settings.region))
    config = uvicorn_config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ssl_certfile=settings.ssl_certfile,
        ssl_keyfile=settings.ssl_keyfile,
    )
    server = _Server(config, app.state.admission)
    if settings.worker:
        services.start_worker()
    # What start-up made (modules, tables, the app) lives as long as the process: keep it out of the
    # garbage collector's full passes, which otherwise walk it under load and show up in the p99.
    gc.freeze()
    try:
        server.run()
    finally:
        services.close()


def run_worker(settings: Settings, services: Services) -> None:
    """A worker process: run tasks until SIGINT/SIGTERM, then let running steps finish."""
    logs.configure(settings.log_level, settings.log_format)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    for difference in agreement.disagreements(services.db, settings):
        structlog.get_logger("hpcplane.worker").warning("settings differ from the API's", detail=difference)
    worker = services.start_worker()
    if services.engine.db is not services.db:
        services.db.dispose()  # start-up's connection: from here on the engine's pool is the worker's
    click.echo(f"hpcplane worker {services.engine.owner} running {worker.concurrency} at a time")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        services.close()
