"""Where `make env` gets PyTorch: on Linux, PyTorch's CPU index, so a laptop gets torch without the CUDA libraries
(several GB that PyPI's Linux wheel depends on); macOS wheels on PyPI are CPU builds already.

    python tools/torch_index.py     # prints pip's option for the CPU index, or nothing

Where the CPU index cannot be reached (offline mirrors, a closed network), it prints nothing and says so in one line
on stderr within seconds, and pip installs from the default index instead.
"""

from __future__ import annotations

import platform
import sys
import urllib.request
from collections.abc import Callable

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def reachable(url: str = f"{CPU_INDEX}/torch/", timeout_s: float = 5.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def pip_options(system: str | None = None, can_reach: Callable[[], bool] = reachable) -> tuple[str, str | None]:
    """(pip's extra option, a line for the learner or None)."""
    if (system or platform.system()) != "Linux":
        return "", None
    if can_reach():
        return f"--extra-index-url {CPU_INDEX}", None
    return "", (f"PyTorch's CPU index ({CPU_INDEX}) cannot be reached: torch comes from the default index, where "
                "PyPI's Linux build brings CUDA libraries (several GB).")


if __name__ == "__main__":
    option, note = pip_options()
    if note:
        print(note, file=sys.stderr)
    print(option)
