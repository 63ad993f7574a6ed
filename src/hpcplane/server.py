"""Running the API under uvicorn, with the demo banner and a graceful, 503-answering shutdown."""

from __future__ import annotations

import gc
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

import click
import structlog
import uvicorn

from hpcplane import __version__, hooks, logs, metrics
from hpcplane.app import Admission, create_app
from hpcplane.client import write_profile, write_token
from hpcplane.config import Settings
from hpcplane.demo import banner, ensure_demo
from hpcplane.guard import Limits, guarded_protocol
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


def _after_start(server: uvicorn.Server, action: Callable[[], object]) -> None:
    """Run `action` in a thread once uvicorn listens (the init scripts)."""

    def wait() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            action()

    threading.Thread(target=wait, name="hpcplane-init", daemon=True).start()


def run_server(settings: Settings, services: Services) -> None:
    logs.configure(settings.log_level, settings.log_format)
    raise_open_files(settings.max_connections + 256)
    metrics.prepare(settings.metrics_dir or settings.home / "metrics")
    app = create_app(services, threads=settings.api_threads)
    agreement.record_api_settings(services.db, settings)
    # On `local` a demo cluster would be a real one: only when asked (HPCPLANE_DEMO=true).
    wanted = settings.embedded and settings.provider == "simulated"
    demo = ensure_demo(services) if (settings.demo if settings.demo is not None else wanted) else None
    store = (
        "sqlite " + str(settings.effective_database_url[len("sqlite:///") :])
        if services.db.is_sqlite
        else (services.db.url.render_as_string(hide_password=True))
    )
    scheme = "https" if settings.ssl_certfile else "http"
    click.echo(f"hpcplane {__version__} on {scheme}://{settings.host}:{settings.port}  (store: {store})")
    local = (
        f"{scheme}://{'127.0.0.1' if settings.host in ('0.0.0.0', '::') else settings.host}:{settings.port}"  # noqa: S104
    )
    if demo is not None:
        click.echo(banner(demo, settings.host, settings.port, settings.region))
        profile = write_profile(
            settings.home,
            name="demo",
            access_key_id=demo.access_key_id,
            secret=demo.access_key_secret,
            region=settings.region,
            endpoint=local,
        )
        click.echo(
            f"`hpcplane call ListTasks --ClusterId {demo.cluster_id} --Archived true` uses {profile}\n"
        )
    token: str | None = app.state.control_token
    if token is not None:
        token_file = write_token(settings.home, token)
        click.echo(f"Control API on {local}/_hpcplane/ (token in {token_file}): {token}\n")
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
    if settings.init_dir is not None:
        hook_env = {"HPCPLANE_ENDPOINT": local, "HPCPLANE_HOME": str(settings.home.resolve())}
        if token is not None:
            hook_env["HPCPLANE_CONTROL_TOKEN"] = token
        init_dir = settings.init_dir
        _after_start(server, lambda: hooks.run_scripts(init_dir, hook_env))
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
    metrics.prepare(settings.metrics_dir or settings.home / "metrics")
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
