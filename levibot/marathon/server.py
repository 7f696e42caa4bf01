"""A uvicorn server as a managed child process: start, health-check, stop.

Used by the marathon (start and replay), the benchmark and the end-to-end tests, so
there is one way to run the API in the background. The app is named by its import
string, so `levibot` never imports `serving`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

APP = "serving.app:create_app"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """A running uvicorn child process and where to reach it."""

    process: subprocess.Popen
    base_url: str
    log_path: Path
    pid_file: Path | None = None

    def wait_healthy(self, timeout: float = 90.0) -> dict:
        """Block until /healthz answers 200; raise with the server log when it dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                response = httpx.get(f"{self.base_url}/healthz", timeout=2)
                if response.status_code == 200:
                    return response.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"server not healthy after {timeout:.0f} s; log: {self.log_path}")

    def detach(self) -> None:
        """Leave the server running after this process exits (`marathon start`).

        The child runs in its own session (no Ctrl-C from our terminal reaches it); it is
        stopped through its pidfile. Marking the Popen as finished stops Python from
        warning that a child it still tracks is alive when the object goes away.
        """
        self.process.returncode = 0

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)


def start_server(
    env_file: Path,
    *,
    port: int | None = None,
    workers: int = 1,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
    pid_file: Path | None = None,
) -> ServerProcess:
    """Start uvicorn on 127.0.0.1 with the settings in `env_file`; does not wait."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVIBOT_")}
    env.update({"LEVIBOT_ENV_FILE": str(env_file), **(extra_env or {})})
    if "LEVIBOT_ADMIN_TOKEN" in os.environ and "LEVIBOT_ADMIN_TOKEN" not in env:
        env["LEVIBOT_ADMIN_TOKEN"] = os.environ["LEVIBOT_ADMIN_TOKEN"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", APP, "--factory", "--host", "127.0.0.1",
             "--port", str(port), "--workers", str(workers), "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    if pid_file is not None:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{process.pid}\n")
    return ServerProcess(process, f"http://127.0.0.1:{port}", log_path, pid_file)
