"""The ``serve`` tool: the web demo on this machine only, offline, with every file in a private temporary folder
that is deleted when the server stops."""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from ..errors import UsageError
from .arguments import serve_arguments  # noqa: F401

TEMP_PREFIX = "stylegan-lightning-serve-"


def loopback_host(host: str) -> str:
    """``host`` when it is an address of this machine only (127.0.0.0/8, ::1 or ``localhost``), else a
    :class:`UsageError`: the demo is never reachable from other machines."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"--host '{host}' is not an IP address; the demo binds to a loopback address "
                         "(127.0.0.1, ::1 or localhost)") from None
    if not address.is_loopback:
        raise UsageError(f"--host {host} is not a loopback address; the demo serves this machine only "
                         "(127.0.0.1, ::1 or localhost)")
    return host


def free_port(host: str, port: int) -> int:
    """``port`` when it can be bound on ``host`` (0: a free port chosen now), else a :class:`UsageError`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise UsageError(f"--port {port}: cannot listen on {host}:{port} ({error.strerror or error}); "
                             "give another port (0: any free one)") from None
        return probe.getsockname()[1]


def offline_environment(workdir: Path) -> dict[str, str]:
    """Environment for Gradio and the libraries it imports: no analytics or update checks, no hub access, caches
    and uploads under ``workdir``. Set it before Gradio is imported."""
    return {"GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(workdir / "uploads"),
            "GRADIO_SSR_MODE": "False", "GRADIO_SHARE": "False", "GRADIO_MCP_SERVER": "False",
            "GRADIO_SERVER_NAME": "127.0.0.1", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HOME": str(workdir / "huggingface"), "MPLCONFIGDIR": str(workdir / "matplotlib"),
            "DO_NOT_TRACK": "1"}


def make_workdir() -> Path:
    """A new private temporary folder for one server run."""
    return Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))


def _stop_on_terminate() -> None:
    """SIGTERM (``kill``, a service manager) stops the server like Ctrl-C, so the temporary folder is removed."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def run_serve(args: argparse.Namespace) -> int:
    """``serve``: check the options and files, load the models, serve the page until interrupted."""
    from .models import DemoModels, settings_from_args

    host = loopback_host(args.host)
    settings = settings_from_args(args)
    port = free_port(host, args.port)
    workdir = make_workdir()
    _stop_on_terminate()
    try:
        os.environ.update(offline_environment(workdir))
        try:
            from .app import build_app, launch
        except ImportError as error:
            raise UsageError(f"serve needs Gradio ({error}): pip install -e '.[web]' (`make env` installs it)") \
                from None
        start = time.perf_counter()
        models = DemoModels(settings)
        models.warm_up()
        methods = ", ".join(models.methods)
        print(f"models loaded in {time.perf_counter() - start:.1f} s (methods: {methods}; codec: {settings.codec})")
        print(f"serving http://{host if ':' not in host else f'[{host}]'}:{port} (this machine only; files in "
              f"{workdir}, deleted on exit); Ctrl-C stops", flush=True)
        launch(build_app(models, workdir), host, port, args.max_upload_mb, workdir, block=True)
    except KeyboardInterrupt:
        pass
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


__all__ = ["TEMP_PREFIX", "free_port", "loopback_host", "make_workdir", "offline_environment", "run_serve"]
