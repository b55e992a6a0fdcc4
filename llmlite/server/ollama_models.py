"""What Ollama's model endpoints say about a model, read from its GGUF file without
loading it: /api/tags' rows (name, size, digest, details), /api/show's answer (the
chat template, the sampling defaults, the GGUF metadata as model_info).

Ollama's models are its own blobs named by their sha256; llmlite's are GGUF files, so
the digest is the file's sha256 where one is known without reading the file (its
models.toml entry, a Hugging Face blob's name), else a hash of the file's path, size
and modification time: it still changes when the file does, which is what a client
uses it for, and hashing gigabytes on each listing is not an option.
"""
from __future__ import annotations

import hashlib
import logging
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np


log = logging.getLogger("llmlite.serve")

FORMAT = "gguf"
# GGUF metadata too large for a listing: /api/show gives them only with "verbose": true, as Ollama
_BULKY = 64


def timestamp(t: Optional[float] = None) -> str:
    """RFC 3339 in UTC, as Ollama's created_at and modified_at"""
    d = datetime.now(timezone.utc) if t is None else datetime.fromtimestamp(t, timezone.utc)
    return d.isoformat().replace("+00:00", "Z")


def entry_file(entry) -> Optional[Path]:
    """a models.toml alias's file in llmlite's cache, if it is there (never fetched here)"""
    from llmlite.registry import cache_dir

    p = cache_dir() / entry.file
    return p if entry.file and p.is_file() else None


def digest(path: Path, entry=None) -> str:
    if entry is not None and entry.sha256:
        return entry.sha256
    blob = path.resolve().name
    if re.fullmatch(r"[0-9a-f]{64}", blob):      # the Hugging Face cache names blobs by their sha256
        return blob
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()} {st.st_size} {st.st_mtime_ns}".encode()).hexdigest()


def _facts(g) -> tuple[dict, int]:
    """(Ollama's details, the parameter count) of an open GGUF"""
    from llmlite.cli.output import fmt_params
    from llmlite.config import ModelConfig
    from llmlite.gguf.constants import FILE_TYPE_NAMES

    md = g.metadata
    arch = md.get("general.architecture", "")
    n = ModelConfig.from_gguf(g).param_count
    ftype = md.get("general.file_type")
    return {"parent_model": "", "format": FORMAT, "family": arch, "families": [arch] if arch else None,
            "parameter_size": md.get("general.size_label") or fmt_params(n),
            "quantization_level": FILE_TYPE_NAMES.get(ftype, "") if ftype is not None else ""}, n


def details(path: Optional[Path]) -> dict:
    """Ollama's details of a GGUF file (only the format where it cannot be read)"""
    from llmlite.gguf import open_gguf

    if path is not None:
        try:
            with open_gguf(path) as g:
                return _facts(g)[0]
        except Exception as e:      # one unreadable file in a cache must not fail the whole listing
            log.info("%s: no details (%s)", path.name, " ".join(str(e).split())[:200])
    return {"parent_model": "", "format": FORMAT, "family": "", "families": None, "parameter_size": "",
            "quantization_level": ""}


def tag(name: str, path: Optional[Path], entry=None) -> dict:
    """one /api/tags row: path None is an alias not fetched yet (its size from models.toml)"""
    if path is None:
        return {"name": name, "model": name, "modified_at": timestamp(0), "size": (entry.size or 0) if entry else 0,
                "digest": (entry.sha256 or "") if entry else "", "details": details(None)}
    st = path.stat()
    return {"name": name, "model": name, "modified_at": timestamp(st.st_mtime), "size": st.st_size,
            "digest": digest(path, entry), "details": details(path)}


def _plain(v: Any, verbose: bool) -> Any:
    """a GGUF metadata value as JSON: arrays as lists (long ones null unless verbose)"""
    if isinstance(v, (str, bool, int, float)) or v is None:
        return v
    if isinstance(v, np.generic):
        return v.item()
    items = v.tolist() if hasattr(v, "tolist") else list(v)
    if len(items) > _BULKY and not verbose:
        return None
    return items


def show(name: str, path: Path, template: Optional[str], defaults: dict, thinking: bool, verbose: bool) -> dict:
    """/api/show's answer for a GGUF file: template is the chat template's source (Jinja,
    not Ollama's Go templates), defaults the models.toml sampling, as Ollama's parameters"""
    from llmlite.gguf import open_gguf

    with open_gguf(path) as g:
        facts, n = _facts(g)
        info = {k: _plain(v, verbose) for k, v in g.metadata.items()}
        info["general.parameter_count"] = n
        if template is None:
            template = g.metadata.get("tokenizer.chat_template")
    caps = ["completion"] + (["thinking"] if thinking else [])
    params = "\n".join(f"{k} {v}" for k, v in defaults.items())
    return {"license": info.get("general.license", ""), "modelfile": f"FROM {name}\n",
            "parameters": params, "template": template or "", "details": facts, "model_info": info,
            "capabilities": caps, "modified_at": timestamp(path.stat().st_mtime)}
