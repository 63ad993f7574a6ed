"""Running the API under uvicorn, with the demo banner and a graceful, 503-answering shutdown."""

from __future__ import annotations

import gc
import signal
import threading
from types import FrameType

import click
import uvicorn

from hpcplane import __version__, logs
from hpcplane.app import Admission, create_app
from hpcplane.config import Settings
from hpcplane.demo import banner, ensure_demo
from hpcplane.guard import Limits, guarded_protocol
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


def raise_open_files(wanted: int) -> None:
    """Let this process hold `wanted` open files (its connection limit, and some), within the hard limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows has no such limit to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run_server(settings: Settings, services: Services) -> None:
    logs.configure(settings.log_level, settings.log_format)
    raise_open_files(settings.max_connections + 256)
    app = create_app(services, threads=settings.api_threads)
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
        http=guarded_protocol(limits(settings)),
        timeout_keep_alive=settings.keep_alive_timeout,
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


def limits(settings: Settings) -> Limits:
    """The connection guard's bounds, from the settings of the same names."""
    return Limits(
        host_id=settings.host_id,
        max_body_bytes=settings.max_body_bytes,
        max_url_bytes=settings.max_url_bytes,
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        idle_timeout=settings.idle_timeout,
        max_connections=settings.max_connections,
    )


def run_worker(settings: Settings, services: Services) -> None:
    """A worker process: run tasks until SIGINT/SIGTERM, then let running steps finish."""
    logs.configure(settings.log_level, settings.log_format)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    worker = services.start_worker()
    click.echo(f"hpcplane worker {services.engine.owner} running {worker.concurrency} at a time")
    try:
        while not stop.wait(1.0):
            pass
    finally:
        services.close()
