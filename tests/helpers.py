"""What several test modules share: the repository's root, what importing a module
brings, free ports, whether a process has ended, a head whose liveness a test decides,
a page rendered in headless Chromium."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from raybricks.cluster.head import Head
from raybricks.cluster.sockets import listening

ROOT = Path(__file__).resolve().parents[1]


def imported_by(module: str, among: set[str]) -> list[str]:
    """Which of the packages `among` (or any module below one) a fresh Python has
    imported once it has imported `module`."""
    check = (
        "import json, sys\n"
        f"import {module}\n"
        f"among = {sorted(among)!r}\n"
        "print(json.dumps(sorted(name for name in among if any(\n"
        "    m == name or m.startswith(name + '.') for m in list(sys.modules)))))\n"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def ended(process: psutil.Process | int) -> bool:
    """Whether it exited (a zombie, waiting for its new parent to collect it, has)."""
    try:
        found = process if isinstance(process, psutil.Process) else psutil.Process(process)
        return found.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_ports(count: int) -> range:
    """`count` consecutive ports free on this machine now, below the ephemeral range
    (where the kernel hands out no ports unasked, so the cluster tests running beside
    these take them only by chance): few, so that random picks among them would collide."""
    for first in range(30000, 32768 - count, count):
        candidates = range(first, first + count)
        if all(_unused(port) for port in candidates):
            return candidates
    raise AssertionError(f"no {count} consecutive free ports in 30000-32767")


def _unused(port: int) -> bool:
    return not listening("127.0.0.1", port)


@dataclass(frozen=True)
class ScriptedHead(Head):
    """A head that is alive while `looks()` says so."""

    host: str = "127.0.0.1"
    port: int = 0
    looks: Callable[[], bool] = field(default=lambda: True)

    def alive(self) -> bool:
        return self.looks()


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As this machine's docs advise: no background networking, a fresh profile.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def render_in_chromium(page: Path, folder: Path) -> tuple[str, Path]:
    """The page's DOM as headless Chromium renders it, and a PNG screenshot of it."""
    assert CHROMIUM, "chromium is not installed"
    flags = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={folder / 'chromium-profile'}"]
    done = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    png = folder / "report.png"
    shot = [*flags, f"--screenshot={png}", "--window-size=1100,1500", page.as_uri()]
    subprocess.run(shot, capture_output=True, timeout=120, check=True)
    return done.stdout, png


def png_shades(png: Path) -> int:
    """How many distinct byte values a PNG's pixel data holds: 1 or 2 for one flat
    colour, many for a page with text and shapes."""
    data, pixels, at = png.read_bytes(), b"", 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        if kind == b"IDAT":
            pixels += data[at + 8 : at + 8 + length]
        at += 12 + length
    return len(set(zlib.decompress(pixels)))
