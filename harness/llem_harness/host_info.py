"""Software and CPU facts recorded with every result (what produced these numbers)."""
from __future__ import annotations

import json
import os
import platform
import socket
from pathlib import Path

from llenergymeasure.domain import EnvironmentInfo


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def in_container() -> bool:
    return Path("/.dockerenv").exists() or os.environ.get("LLEM_IN_CONTAINER") == "1"


def base_environment() -> EnvironmentInfo:
    try:
        from importlib.metadata import version

        llem_version = version("llenergymeasure")
    except Exception:
        llem_version = None
    return EnvironmentInfo(python_version=platform.python_version(), platform=platform.platform(),
                           hostname=socket.gethostname(), cpu_model=cpu_model(), cpu_count=os.cpu_count(),
                           in_container=in_container(), llenergymeasure_version=llem_version,
                           extra_mounts=extra_mounts())


def extra_mounts() -> list[str]:
    """The bind mounts the study added to this container (the Docker runner names them in the environment)."""
    try:
        value = json.loads(os.environ.get("LLEM_EXTRA_MOUNTS") or "[]")
    except ValueError:
        return ["(unreadable LLEM_EXTRA_MOUNTS)"]
    return [str(item) for item in value] if isinstance(value, list) else []
