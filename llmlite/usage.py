"""When each cached model file was last run, for `llmlite list`: a small JSON record
in llmlite's cache. Only files in the caches are recorded (a model run from anywhere
else, such as a test's temporary file, is not one `list` shows), files gone since are
dropped, and the record keeps the newest MAX_ENTRIES: it cannot grow without bound."""
from __future__ import annotations

import json
import time
from pathlib import Path

MAX_ENTRIES = 200


def _record() -> Path:
    from llmlite.registry import cache_dir

    return cache_dir() / ".last_used.json"


def _in_a_cache(p: Path) -> bool:
    from huggingface_hub import constants

    from llmlite.registry import cache_dir

    return any(p.is_relative_to(Path(d).resolve()) for d in (cache_dir(), constants.HF_HUB_CACHE))


def note_used(path: Path) -> None:
    """record that a model file was just loaded to run"""
    from llmlite.atomic import atomic_write

    p = Path(path).resolve()           # a Hugging Face snapshot link: its blob
    try:
        if not _in_a_cache(p):
            return
        f = _record()
        data = json.loads(f.read_text()) if f.is_file() else {}
        data = {k: v for k, v in data.items() if isinstance(v, (int, float)) and Path(k).exists()}
        data[str(p)] = time.time()
        keep = dict(sorted(data.items(), key=lambda kv: kv[1])[-MAX_ENTRIES:])
        with atomic_write(f, "w") as out:
            out.write(json.dumps(keep))
    except (OSError, ValueError, AttributeError):
        pass                              # a record we cannot keep is not worth an error


def last_used(path: Path) -> float | None:
    """when `path` was last loaded to run (seconds since the epoch), or None"""
    try:
        return json.loads(_record().read_text()).get(str(Path(path).resolve()))
    except (OSError, ValueError, AttributeError):
        return None
