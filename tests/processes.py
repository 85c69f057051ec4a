"""Helpers for the real servers the tests start (Orthanc, Streamlit): a free port, and a clean stop."""

from __future__ import annotations

import socket
import subprocess


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen, timeout: float = 20) -> None:
    """Ask ``process`` to end (SIGTERM), and kill it if it has not ended within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
