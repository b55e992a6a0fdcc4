"""models.toml aliases, the local model cache, and fetching models into it."""
from __future__ import annotations

import contextlib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from llmlite import settings
from llmlite.atomic import atomic_write
from llmlite.download_bar import progress_class
from llmlite.errors import RegistryError


@dataclass
class ModelEntry:
    alias: str
    file: str
    sha256: str | None = None          # None: checked against the hub's LFS sha256 instead
    description: str = ""
    parts: list[dict] = field(default_factory=list)
    hf_repo: str | None = None
    hf_file: str | None = None
    revision: str | None = None        # a Hugging Face commit (None: main)
    size: int | None = None
    license: str = ""
    sampling: dict = field(default_factory=dict)   # SamplingParams field -> value


def _plain_name(name: str) -> bool:
    """one file name, no folder in it: all that may be joined to a cache folder, so a
    hostile models.toml cannot point `run` or `rm` outside the cache ("../../x"). A
    leading dot is refused too: those names are the cache's own records."""
    return bool(name) and not name.startswith(".") and not any(c in name for c in "/\\\0")


_HF_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


def _hf_problem(repo: str, filename: str | None) -> str | None:
    """why `repo` (org/name) and `filename` (a path inside it, if given) cannot name a
    Hugging Face file, or None: both are joined to the hub's cache folders"""
    if not _HF_REPO.fullmatch(repo) or ".." in repo:
        return f"{repo!r} is not a Hugging Face repo (org/name)"
    if filename is not None and any(c in ("", ".", "..") or "\\" in c or "\0" in c for c in filename.split("/")):
        return f"{filename!r} is not a file path inside the repo"
    return None


def _entry(alias: str, m: dict) -> ModelEntry:
    """one [models.ALIAS] table, checked"""
    def bad(why: str) -> RegistryError:
        return RegistryError(f"models.toml entry {alias!r}: {why}")

    hf_repo, hf_file = m.get("hf_repo"), m.get("hf_file")
    if "hf" in m:                                   # hf = "org/repo:file.gguf"
        hf_repo, sep, hf_file = str(m["hf"]).partition(":")
        if not sep or hf_repo.count("/") != 1 or not hf_file:
            raise bad(f"hf = {m['hf']!r}: expected \"org/repo:file.gguf\"")
    if hf_repo and hf_file and (why := _hf_problem(str(hf_repo), str(hf_file))):
        raise bad(why)
    parts = m.get("parts", [])
    if not parts and not (hf_repo and hf_file) and "file" not in m:
        raise bad("needs a source (hf or parts) or a file")
    if not (hf_repo and hf_file) and not isinstance(m.get("file"), str):
        raise bad("needs file, the name it is cached under")
    if not isinstance(parts, list) or not all(isinstance(x, dict) and isinstance(x.get("wheel"), str)
                                              and isinstance(x.get("member"), str) for x in parts):
        raise bad("parts must be a list of { wheel = \"name==version\", member = \"path\" }")
    revision = m.get("revision")
    if revision is not None and not isinstance(revision, str):
        raise bad("revision must be a commit (a string)")
    sha = m.get("sha256")
    if sha is not None and not (isinstance(sha, str) and len(sha) == 64
                                and all(c in "0123456789abcdef" for c in sha.lower())):
        raise bad("sha256 must be 64 hex digits")
    if sha is None and (parts or not hf_repo):
        raise bad("needs sha256 (only a Hugging Face file may leave it to the hub's LFS sha256)")
    from llmlite.genconfig import SAMPLING_KEYS
    from llmlite.sampling import check_sampling

    sampling, table = {}, m.get("sampling", {})
    if not isinstance(table, dict):
        raise bad("sampling must be a table, like { temp = 0.7, top_p = 0.9 }")
    for k, v in table.items():
        if k not in SAMPLING_KEYS or isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad(f"sampling.{k} = {v!r}: one of {', '.join(SAMPLING_KEYS)}, a number")
        name, read = SAMPLING_KEYS[k]
        sampling[name] = read(v)
    try:
        check_sampling(**sampling)
    except ValueError as e:
        raise bad(f"sampling: {e}") from None
    size = m.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise bad("size must be a byte count")
    file = m.get("file") or Path(hf_file).name
    if not _plain_name(file):
        raise bad(f"file = {file!r}: a file name in the cache, without a folder")
    return ModelEntry(alias=alias, file=file, sha256=sha.lower() if sha else None,
                      description=m.get("description", ""), parts=parts, hf_repo=hf_repo, hf_file=hf_file,
                      revision=revision, size=size, license=m.get("license", ""), sampling=sampling)


def models_toml_path() -> Path:
    env = settings.env("LLMLITE_MODELS_TOML")
    if env:
        return Path(env)
    p = Path(__file__).resolve().parent / "models.toml"
    if p.is_file():
        return p
    raise RegistryError("models.toml not found (set LLMLITE_MODELS_TOML)")


def cache_dir() -> Path:
    d = settings.cache_root() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def user_models_toml_path() -> Path:
    """the user's models.toml, in settings.config_dir()"""
    return settings.config_dir() / "models.toml"


def load_registry() -> tuple[str, dict[str, ModelEntry]]:
    """the shipped models.toml, with the user's file laid over it: its entries add to
    the shipped ones or replace those of the same alias, its `default` wins"""
    import tomllib

    with open(models_toml_path(), "rb") as f:
        data = tomllib.load(f)
    default, models = data.get("default"), dict(data.get("models", {}))
    user = user_models_toml_path()
    if user.is_file():
        try:
            with open(user, "rb") as f:
                extra = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise RegistryError(f"{user}: {e}") from None
        models.update(extra.get("models", {}))
        default = extra.get("default", default)
    entries = {alias: _entry(alias, m) for alias, m in models.items()}
    return default or next(iter(entries), ""), entries


def entry_for(name: str | None) -> ModelEntry | None:
    """the models.toml entry a model argument names (None: the default alias), if any"""
    try:
        default, entries = load_registry()
    except RegistryError:
        return None
    return entries.get(default if name is None else name)


def sha256_file(path: Path, bufsize: int = 1 << 22) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def _write_replacing(f: Path, text: str) -> None:
    """write f whole or not at all (a reader never sees half of it)"""
    with atomic_write(f, "w") as out:
        out.write(text)


def _stamp(path: Path, sha256: str | None) -> str:
    """what a verified file's marker records: its sha256 and the file's identity. The
    change time is in it because no user call can set it back: a byte changed in
    place with the modified time restored (os.utime) still changes st_ctime."""
    st = path.stat()
    return f"{sha256} {st.st_size} {st.st_mtime_ns} {st.st_ino} {st.st_ctime_ns}"


def _marker(dest: Path) -> Path:
    """the stamp of a file in llmlite's cache, beside it"""
    return dest.with_name(dest.name + ".sha256")


def _stamped(path: Path, marker: Path, sha256: str | None) -> bool:
    """the marker says this very file (same identity) was hashed to sha256"""
    try:
        return marker.read_text().strip() == _stamp(path, sha256)
    except OSError:
        return False


def _hash_and_stamp(path: Path, marker: Path, sha256: str) -> str:
    """hash path again and return its sha256; if that is the one wanted, stamp it"""
    got = sha256_file(path)
    if got == sha256:
        marker.parent.mkdir(parents=True, exist_ok=True)
        _write_replacing(marker, _stamp(path, sha256))   # two processes may both write it
    return got


def _mismatch(what: str, got: str, want: str) -> str:
    return f"{what}: sha256 mismatch (got {got[:16]}..., want {want[:16]}...)"


def _verified(dest: Path, sha256: str, rehash: bool = True, recheck: bool = False) -> bool:
    """dest is there and has that sha256: by the stamp beside it (trusted only for the
    same file identity, unless recheck), else (rehash) hashed again and stamped. A
    file found with another hash is deleted, with a line saying so."""
    if not dest.is_file():
        return False
    marker = _marker(dest)
    if not recheck and _stamped(dest, marker, sha256):
        return True
    if not rehash:
        return False
    if (got := _hash_and_stamp(dest, marker, sha256)) == sha256:
        return True
    print(f"warning: {_mismatch(dest.name, got, sha256)}: the cached file was deleted", file=sys.stderr)
    dest.unlink(missing_ok=True)
    marker.unlink(missing_ok=True)
    return False


@contextlib.contextmanager
def _fetch_lock(dest: Path, quiet: bool):
    """While held, this process alone fetches `dest`: two `pull`s of one model would
    otherwise write one .part file together. The second waits here, then finds the
    file the first one made. (The lock files are kept outside the models folder, in
    locks/: removing one while another process waits on it would break the lock.)"""
    import fcntl

    d = settings.cache_root() / "locks"
    d.mkdir(parents=True, exist_ok=True)
    with open(d / (dest.name + ".lock"), "a") as f:    # closing it releases the lock
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not quiet:
                print(f"waiting for another llmlite fetching {dest.name}", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def ensure_model(alias: str, quiet: bool = False, recheck: bool = False) -> Path:
    """Return the cached path of a models.toml alias, fetching and verifying it if
    needed (recheck: hash a cached file again even if its stamp vouches for it)."""
    _, entries = load_registry()
    if alias not in entries:
        raise RegistryError(f"unknown model alias {alias!r} (known: {', '.join(sorted(entries))})")
    entry = entries[alias]
    if entry.hf_repo and entry.hf_file and not entry.parts:
        return pull_hf(entry.hf_repo, entry.hf_file, entry.sha256, entry.size, entry.revision, recheck)
    dest = cache_dir() / entry.file
    if not recheck and _verified(dest, entry.sha256, rehash=False):   # the usual case, no lock needed
        return dest
    with _fetch_lock(dest, quiet):
        if _verified(dest, entry.sha256, recheck=recheck):  # perhaps fetched while this one waited
            return dest
        if not entry.parts:
            raise RegistryError(f"models.toml entry {alias!r} has no source")
        with atomic_write(dest) as out:                   # checked before it takes dest's name
            from llmlite.wheels import fetch_parts

            fetch_parts(entry.alias, entry.parts, entry.size, out, quiet)
            out.flush()
            if entry.size and out.tell() != entry.size:
                raise RegistryError(f"{alias}: {out.tell()} bytes fetched, models.toml says {entry.size}")
            got = sha256_file(Path(out.name))
            if got != entry.sha256:
                raise RegistryError(_mismatch(alias, got, entry.sha256))
        _write_replacing(_marker(dest), _stamp(dest, entry.sha256))
    return dest


def resolve_model(name: str | None) -> Path:
    """A path, or an alias (fetched if needed), or None for the default alias."""
    if name is None:
        default, _ = load_registry()
        return ensure_model(default)
    p = Path(name).expanduser()
    if name.startswith(HF_PREFIX) or (not p.exists() and name.count("/") == 1 and p.suffix.lower() != ".gguf"
                                      and not name.startswith((".", "/", "~"))):
        return pull(name)                 # a Hugging Face name: fetched on first use
    if p.exists() or p.suffix == ".gguf" or os.sep in name:
        return p
    return ensure_model(name)


# ---- Hugging Face files: pull, list, rm ------------------------------------------------

HF_PREFIX = "hf://"
DEFAULT_QUANT = "Q4_K_M"


def parse_hf_name(name: str) -> tuple[str, str | None, str | None]:
    """(repo, file, quant) of `hf://org/repo/file.gguf` (file) or `org/repo[:QUANT]`
    (quant, Q4_K_M by default)"""
    if name.startswith(HF_PREFIX):
        parts = name[len(HF_PREFIX):].split("/", 2)
        if len(parts) < 3 or not parts[2]:
            raise RegistryError(f"{name}: expected hf://org/repo/file.gguf")
        repo, filename, quant = f"{parts[0]}/{parts[1]}", parts[2], None
    else:
        repo, _, quant = name.partition(":")
        if repo.count("/") != 1:
            raise RegistryError(f"{name}: not a models.toml alias, hf://org/repo/file.gguf or org/repo[:QUANT]")
        filename, quant = None, quant or DEFAULT_QUANT
    if why := _hf_problem(repo, filename):
        raise RegistryError(f"{name}: {why}")
    return repo, filename, quant


NO_NETWORK = "no network (or the hub is unreachable)"


@contextlib.contextmanager
def _hub_errors(what: str):
    """the hub client's errors (httpx2 transport errors, huggingface_hub.errors.*) as
    one RegistryError line about `what` (repo or repo/file)"""
    import httpx2
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError)

    try:
        yield
    except (LocalEntryNotFoundError, httpx2.TransportError, RepositoryNotFoundError, EntryNotFoundError,
            HfHubHTTPError) as e:
        # LocalEntryNotFoundError: the hub was not reached (or HF_HUB_OFFLINE) and the file is not cached
        if isinstance(e, LocalEntryNotFoundError) and _offline():
            why = "not in the cache, and HF_HUB_OFFLINE is set"
        elif isinstance(e, (LocalEntryNotFoundError, httpx2.TransportError)):
            why = NO_NETWORK
        elif isinstance(e, RepositoryNotFoundError):   # before HfHubHTTPError: it is one
            why = "no such repository on the hub (or it is private or gated)"
        elif isinstance(e, EntryNotFoundError):
            why = "no such file in the repository"
        else:
            why = f"the hub answered HTTP {getattr(e.response, 'status_code', None)}"
        raise RegistryError(f"{what}: {why}") from None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


def _hub_reachable() -> bool:
    """The hub client retries a refused connection 5 times over 24 s; one quick request
    here, retried once after a short wait, tells at once whether to go online at all."""
    import time

    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if _offline():
        return False
    for wait in (0.5, None):
        try:
            get_session().head(constants.ENDPOINT, timeout=constants.HF_HUB_ETAG_TIMEOUT)
            return True
        except httpx2.TransportError:
            if wait is not None:
                time.sleep(wait)
    return False


def _pick_file(repo: str, quant: str) -> str:
    from huggingface_hub import HfApi

    if not _hub_reachable():
        raise RegistryError(f"{repo}: HF_HUB_OFFLINE is set: name the file (hf://{repo}/FILE.gguf)" if _offline()
                            else f"{repo}: {NO_NETWORK}")
    with _hub_errors(repo):
        files = [f for f in HfApi().list_repo_files(repo) if f.lower().endswith(".gguf")]
    hits = [f for f in files if quant.lower() in Path(f).name.lower()]
    if not hits:
        raise RegistryError(f"{repo}: no {quant} GGUF (files: {', '.join(files) or 'none'})")
    return sorted(hits, key=lambda f: ("-of-" in f, len(f), f))[0]


def _hf_sha256(repo: str, filename: str, revision: str | None = None) -> str | None:
    """the hub's sha256 of an LFS file (its etag), or None"""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        etag = (get_hf_file_metadata(hf_hub_url(repo, filename, revision=revision)).etag or "").strip('"').lower()
    except Exception:
        return None
    return etag if len(etag) == 64 and all(c in "0123456789abcdef" for c in etag) else None


def _drop_cached(path: Path) -> None:
    """remove a Hugging Face cache file: the snapshot link and the blob it points to,
    if that is in the hub's cache (a link planted there must not make `rm` or a sha256
    mismatch delete a file elsewhere)"""
    from huggingface_hub import constants

    blob = path.resolve()
    gone = [path]
    if blob.is_relative_to(Path(constants.HF_HUB_CACHE).resolve()):
        gone.append(blob)
        if "snapshots" in path.parts:        # other snapshots' links to that blob too: a
            repo = Path(*path.parts[:path.parts.index("snapshots")])   # dangling one hides the repo
            gone += [q for q in (repo / "snapshots").rglob("*") if q.is_symlink() and q.resolve() == blob]
    for p in gone:
        try:
            p.unlink()
        except OSError:
            pass


def pull_hf(repo: str, filename: str, sha256: str | None = None, size: int | None = None,
            revision: str | None = None, recheck: bool = False) -> Path:
    """Download (or find in the Hugging Face cache; resumed after an interruption)
    and verify a file: against sha256 (and size), else the hub's LFS sha256. A cached
    file is hashed again when its identity changed since it was verified (or on
    recheck); a mismatch deletes it and fetches it once more; a fresh download that
    does not match is deleted and refused."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    online = _hub_reachable()            # if not, the cached file, if any
    want = sha256 or (_hf_sha256(repo, filename, revision) if online else None)
    what = f"{repo}/{filename}"
    with _hub_errors(what):
        cached = isinstance(try_to_load_from_cache(repo, filename, revision=revision), str)
    while True:
        with _hub_errors(what):
            p = Path(hf_hub_download(repo_id=repo, filename=filename, revision=revision,
                                     tqdm_class=progress_class(), local_files_only=not online))
        got_size = p.stat().st_size
        if size and got_size != size:
            _drop_cached(p)
            raise RegistryError(f"{what}: {got_size} bytes, models.toml says {size}: the file was deleted")
        marker = _hf_marker(p)
        if not want or (not recheck and _stamped(p, marker, want)):
            return p
        if (got := _hash_and_stamp(p, marker, want)) == want:
            return p
        _drop_cached(p)
        if not (cached and online):          # a fresh download that does not match: refused
            raise RegistryError(f"{_mismatch(what, got, want)}: the file was deleted")
        print(f"warning: {_mismatch(what, got, want)}: the cached file was deleted; fetching it again",
              file=sys.stderr)
        cached = False


def is_verified(p: Path) -> bool:
    """a stamp vouches for this very file (a cached model hashed since it last changed)"""
    for marker in (_marker(p), _hf_marker(p)):
        try:
            sha = marker.read_text().split(" ", 1)[0]
        except OSError:
            continue
        if sha != "None" and _stamped(p, marker, sha):
            return True
    return False


def _hf_marker(p: Path) -> Path:
    """the stamp of a Hugging Face cache file, in llmlite's cache (not in the hub's)"""
    return cache_dir() / ".verified" / (p.resolve().name + ".sha256")


def pull(name: str, quiet: bool = False, recheck: bool = False) -> Path:
    """`llmlite pull NAME`: a models.toml alias, hf://org/repo/file.gguf or org/repo[:QUANT]
    (recheck: a cached file is hashed again even if its stamp vouches for it)"""
    _, entries = load_registry()
    if name in entries:
        return ensure_model(name, quiet=quiet, recheck=recheck)
    repo, filename, quant = parse_hf_name(name)
    return pull_hf(repo, filename or _pick_file(repo, quant), recheck=recheck)


def local_models() -> list[dict]:
    """GGUF files in llmlite's cache (PyPI-provided models) and the Hugging Face cache"""
    out = []
    for p in sorted(cache_dir().glob("*.gguf")):
        out.append({"name": p.name, "source": "llmlite cache", "path": p})
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir()
        for repo in info.repos:
            for rev in repo.revisions:
                for f in rev.files:
                    if f.file_name.lower().endswith(".gguf"):
                        out.append({"name": f"hf://{repo.repo_id}/{f.file_path.relative_to(rev.snapshot_path)}",
                                    "source": "hugging face cache", "path": f.file_path})
    except Exception:
        pass
    return out


def verify_cached(m: dict, entries: dict[str, ModelEntry]) -> str:
    """`llmlite list --verify` of one local_models() row: hash the file again against
    what it should be (its models.toml entry; a Hugging Face blob is named by its
    sha256). 'ok' (and stamped), 'deleted' (a mismatch: the file is removed, as any
    mismatch is), or 'unknown' (nothing to check it against)."""
    p = m["path"]
    if m["source"] == "llmlite cache":
        want = next((e.sha256 for e in entries.values() if e.file == p.name and e.parts), None)
        if want is None:
            return "unknown"
        with _fetch_lock(p, quiet=True):     # not while a pull renames a fresh file into place
            return "ok" if _verified(p, want, recheck=True) else "deleted"
    if not p.exists():                       # its blob went with another snapshot's mismatch
        return "deleted"
    blob = p.resolve().name
    if not re.fullmatch(r"[0-9a-f]{64}", blob):
        return "unknown"
    if (got := _hash_and_stamp(p, _hf_marker(p), blob)) == blob:
        return "ok"
    print(f"warning: {_mismatch(m['name'], got, blob)}: the cached file was deleted", file=sys.stderr)
    _drop_cached(p)
    return "deleted"


def remove(name: str) -> list[Path]:
    """`llmlite rm NAME`: the cached files of an alias or a Hugging Face name"""
    _, entries = load_registry()
    gone = []
    if name in entries:
        e = entries[name]
        for p in (cache_dir() / e.file, _marker(cache_dir() / e.file)):
            if p.exists():
                p.unlink()
                gone.append(p)
        if e.hf_repo and e.hf_file:
            name = f"{HF_PREFIX}{e.hf_repo}/{e.hf_file}"
        elif gone:
            return gone
    if name.startswith(HF_PREFIX) or name.count("/") == 1:
        repo, filename, quant = parse_hf_name(name)

        def wanted(hf_name: str) -> bool:
            r, f, _ = parse_hf_name(hf_name)
            return r == repo and (f == filename if filename else quant.lower() in Path(f).name.lower())

        for m in local_models():
            if m["source"] != "llmlite cache" and wanted(m["name"]):
                _drop_cached(m["path"])
                gone.append(m["path"])
    if not gone:
        raise RegistryError(f"{name}: not in the cache (llmlite list shows what is)")
    return gone
