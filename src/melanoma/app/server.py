"""Launch the Streamlit app: ``melanoma app`` in the foreground, ``AppServer`` in the background (tests, benchmarks).

Streamlit reads ``.streamlit/config.toml`` only from the current directory, so the options the app needs are
passed on the command line as well (``STREAMLIT_OPTIONS``); ``melanoma app`` then behaves the same from any
directory. The model folder reaches the app through ``$MELANOMA_MODELS``, which ``default_models_dir`` honours.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from melanoma.app import MAX_UPLOAD_MB
from melanoma.inference.predictor import MODELS_ENV_VAR, TASK_CONFIGS

__all__ = ["APP_SCRIPT", "STREAMLIT_OPTIONS", "AppServer", "free_port", "run_app", "streamlit_command"]

APP_SCRIPT = Path(__file__).resolve().with_name("streamlit_app.py")

#: Streamlit options, by their config.toml name; ``.streamlit/config.toml`` holds the same values.
STREAMLIT_OPTIONS: dict[str, str | int | bool] = {
    "server.headless": True,
    # This machine only, whichever way Streamlit starts; `melanoma app --address 0.0.0.0` opens it to the network.
    "server.address": "127.0.0.1",
    "server.maxUploadSize": MAX_UPLOAD_MB,
    "server.fileWatcherType": "none",
    "server.runOnSave": False,
    "browser.gatherUsageStats": False,
    # Without it, a headless Streamlit on all interfaces asks checkip.amazonaws.com for this machine's public IP
    # at startup (to print an "External URL"); the app makes no outside requests.
    "browser.serverAddress": "localhost",
    "client.toolbarMode": "minimal",
    # An unexpected error shows its type in the page, not its message and traceback (server paths): those go to the
    # server's console only.
    "client.showErrorDetails": "type",
    # The summary table's own toolbar would download a CSV without the disclaimer; the app's "All results CSV"
    # download carries it on every row.
    "client.disableDataExport": True,
    "theme.base": "light",
}

_HEALTH_PATH = "/_stcore/health"
_STOP_TIMEOUT_S = 10.0


def streamlit_command(port: int = 8501, address: str | None = None) -> list[str]:
    """The ``python -m streamlit run`` command line of the app.

    Args:
        port: TCP port to serve on.
        address: interface to bind (e.g. ``0.0.0.0`` for all); None keeps ``127.0.0.1``, this machine only.

    Returns:
        The argument list, starting with this interpreter.
    """
    options: dict[str, str | int | bool] = {**STREAMLIT_OPTIONS, "server.port": int(port)}
    if address:
        options["server.address"] = address
    flags = [f"--{name}={_flag_value(value)}" for name, value in options.items()]
    return [sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT), *flags]


def app_environment(models_dir: str | Path | None = None) -> dict[str, str]:
    """This process's environment, with ``$MELANOMA_MODELS`` set to ``models_dir`` (absolute) when given."""
    environment = dict(os.environ)
    if models_dir is not None:
        environment[MODELS_ENV_VAR] = str(Path(models_dir).expanduser().resolve())
    return environment


def run_app(port: int = 8501, models_dir: str | None = None, address: str | None = None) -> int:
    """Serve the app headless on ``port`` until the server stops or Ctrl+C (``melanoma app``).

    Args:
        port: TCP port, 1..65535.
        models_dir: model folder (``segmentation.json`` / ``classification.json`` + ONNX); None uses
            ``$MELANOMA_MODELS`` or the shipped models.
        address: interface to bind; None keeps ``127.0.0.1``, this machine only.

    Returns:
        The server's exit status (2 when it could not be started; the reason is printed to stderr).
    """
    problem = _launch_problem(port, models_dir, address)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    process = subprocess.Popen(streamlit_command(port, address), env=app_environment(models_dir))
    # A service manager (systemd, `docker stop`) stops `melanoma app` with SIGTERM, which reaches this process only:
    # pass it on, so the server shuts down with it instead of serving on as an orphan.
    previous = _forward_sigterm(process)
    try:
        return process.wait()
    except KeyboardInterrupt:
        # Ctrl+C reached the server too (same process group): give it time to shut down cleanly.
        return _stop(process)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _forward_sigterm(process: subprocess.Popen):
    """Send this process's SIGTERM on to ``process``; returns the handler it replaced (None where none can be set:
    outside the main thread)."""
    try:
        return signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signum))
    except ValueError:  # not the main thread
        return None


class AppServer:
    """The app served from a background process on loopback, for tests and benchmarks.

    Use as a context manager: ``with AppServer(models_dir=folder) as server: ... server.url ...``; the server
    is healthy on entry and stopped on exit. Its output goes to ``log_path`` (a temporary file by default).
    """

    def __init__(
        self,
        port: int | None = None,
        models_dir: str | Path | None = None,
        address: str = "127.0.0.1",
        log_path: str | Path | None = None,
    ):
        self.port = port or free_port(address)
        self.address = address
        self.models_dir = models_dir
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="melanoma-app-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The app's base URL."""
        return f"http://{self.address}:{self.port}"

    def start(self, timeout_s: float = 60.0) -> AppServer:
        """Start the server and wait until its health endpoint answers.

        Raises:
            RuntimeError: the server exited or did not become healthy within ``timeout_s``; the message
                holds the end of its log.
        """
        problem = _launch_problem(self.port, self.models_dir, self.address)
        if problem:
            raise RuntimeError(problem)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                streamlit_command(self.port, self.address),
                env=app_environment(self.models_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            self._wait_until_healthy(timeout_s)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); returns its exit status, None if never started."""
        if self.process is None:
            return None
        return _stop(self.process)

    def log_tail(self, characters: int = 3000) -> str:
        """The end of the server's output (for error messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return ""

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_until_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the app server exited with status {self.process.returncode} before it became healthy; "
                    f"its log ({self.log_path}) ends with:\n{self.log_tail()}"
                )
            if _is_healthy(self.url + _HEALTH_PATH):
                return
            time.sleep(0.2)
        raise RuntimeError(
            f"the app server did not answer {self.url + _HEALTH_PATH} within {timeout_s:.0f} s; "
            f"its log ({self.log_path}) ends with:\n{self.log_tail()}"
        )


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``address`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def _flag_value(value: str | int | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _launch_problem(port: int, models_dir: str | Path | None, address: str | None = None) -> str | None:
    """Why the app cannot start (with what to do), or None."""
    if importlib.util.find_spec("streamlit") is None:
        return (
            "the app needs Streamlit, from the app's install: `make app` in the repository, or "
            "`pip install -e '.[app]'` there"
        )
    if not 1 <= int(port) <= 65535:
        return f"port {port} is not a TCP port; pass --port between 1 and 65535 (default 8501)"
    if models_dir is not None and not Path(models_dir).expanduser().is_dir():
        return (
            f"models folder {models_dir} does not exist; pass --models with the folder that holds "
            "segmentation.json and/or classification.json (written by `melanoma export`)"
        )
    folder = Path(models_dir).expanduser() if models_dir is not None else None
    if folder is not None and not any((folder / name).is_file() for name in TASK_CONFIGS.values()):
        # the page would say so to whoever opens it; a server started for others (ADDRESS=0.0.0.0) says it here
        return (
            f"models folder {models_dir} holds no model (neither {' nor '.join(TASK_CONFIGS.values())}); pass "
            "--models with the folder `melanoma export` wrote"
        )
    return _listen_problem(address or "127.0.0.1", int(port))


def _listen_problem(address: str, port: int) -> str | None:
    """Why the server could not listen on ``address:port`` (tried here, as Streamlit would, and released at once),
    or None: Streamlit itself ends an unknown address in a traceback and a busy port in a bare "not available"."""
    try:
        family, kind, protocol, _, socket_address = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as error:
        return (
            f"--address {address} is neither an address nor a host name this machine can resolve "
            f"({getattr(error, 'strerror', None) or error}); pass an address of this machine: 127.0.0.1 (this machine "
            "only, the default) or 0.0.0.0 (every network interface)"
        )
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: a closed port is free
        try:
            probe.bind(socket_address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {address} is in use (another app or server); pass another with --port N "
                    "(make: PORT=N make app), or stop what holds it"
                )
            if error.errno == errno.EADDRNOTAVAIL:
                return (
                    f"--address {address} is not an address of this machine; pass one of its own, 127.0.0.1 (this "
                    "machine only, the default) or 0.0.0.0 (every network interface)"
                )
            if error.errno == errno.EACCES:
                return f"port {port} needs administrator rights here; pass --port 1024 or higher (default 8501)"
            return f"cannot listen on {address}:{port} ({error.strerror or error}); pass another --port or --address"
    return None


def _is_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
