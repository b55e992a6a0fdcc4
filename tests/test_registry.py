"""The model registry against a local stand-in: a models.toml in a tmp dir, a tmp
cache, and fake wheels (zip files) served by a replaced downloader. No network."""
import hashlib
import os
import re
import time
import zipfile
from pathlib import Path

import pytest

from helpers import llmlite
from llmlite import registry, wheels
from llmlite.registry import RegistryError, ensure_model, load_registry, resolve_model

PARTS = [b"GGUF" + bytes(range(256)) * 3, b"second part \x00\xff" * 100, b"the end"]
WHOLE = b"".join(PARTS)


def _member(i: int) -> str:
    return f"fake_part{i}/data/model.gguf.part{i:02d}"


def _toml(sha: str, parts=True) -> str:
    lines = ['default = "fake"', "", "[models.fake]", 'file = "fake-model.gguf"', f'sha256 = "{sha}"',
             'description = "a stand-in"']
    if parts:
        lines.append("parts = [")
        for i in range(len(PARTS)):
            lines.append(f'  {{ wheel = "fake-part{i}==1.0", member = "{_member(i)}" }},')
        lines.append("]")
    lines += ["", "[models.nosource]", 'file = "x.gguf"', f'sha256 = "{sha}"']
    return "\n".join(lines) + "\n"


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A registry with one four-part model 'fake' (the right sha256) and a fake
    downloader; returns (set_toml(sha), calls, cache dir)."""
    cache = tmp_path / "cache"
    toml = tmp_path / "models.toml"
    monkeypatch.setenv("LLMLITE_CACHE", str(cache))
    monkeypatch.setenv("LLMLITE_MODELS_TOML", str(toml))
    calls = []

    def fake_download(spec: str, dest_dir: Path, quiet: bool, bar=None) -> Path:
        calls.append(spec)
        i = int(spec.split("==")[0].removeprefix("fake-part"))
        w = dest_dir / f"fake_part{i}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(w, "w") as z:
            z.writestr(f"fake_part{i}/__init__.py", "")
            z.writestr(_member(i), PARTS[i])
        return w

    monkeypatch.setattr(wheels, "download_wheel", fake_download)

    def set_toml(sha: str, parts=True):
        toml.write_text(_toml(sha, parts))

    set_toml(hashlib.sha256(WHOLE).hexdigest())
    return set_toml, calls, cache / "models"


def test_parts_are_concatenated_in_order(stand_in):
    _, calls, models = stand_in
    p = ensure_model("fake", quiet=True)
    assert p == models / "fake-model.gguf"
    assert p.read_bytes() == WHOLE
    assert calls == [f"fake-part{i}==1.0" for i in range(len(PARTS))]
    # nothing else left in the cache but the file and its verified-hash stamp
    assert sorted(x.name for x in models.iterdir()) == ["fake-model.gguf", "fake-model.gguf.sha256"]


def test_cached_file_is_reused_without_fetching(stand_in):
    _, calls, _ = stand_in
    p1 = ensure_model("fake", quiet=True)
    n = len(calls)
    p2 = ensure_model("fake", quiet=True)
    assert p2 == p1 and len(calls) == n
    # a stale stamp (e.g. the file was touched) re-hashes the file, still no fetch
    p1.with_suffix(".gguf.sha256").write_text("stale")
    assert ensure_model("fake", quiet=True) == p1 and len(calls) == n
    assert p1.read_bytes() == WHOLE


def test_corrupt_cached_file_is_fetched_again(stand_in):
    _, calls, models = stand_in
    p = ensure_model("fake", quiet=True)
    n = len(calls)
    p.write_bytes(b"GGUF but damaged")
    assert ensure_model("fake", quiet=True) == p
    assert len(calls) == 2 * n
    assert p.read_bytes() == WHOLE


def test_sha256_mismatch_raises_and_leaves_nothing(stand_in):
    set_toml, calls, models = stand_in
    set_toml("0" * 64)
    with pytest.raises(RegistryError, match="sha256 mismatch"):
        ensure_model("fake", quiet=True)
    assert calls  # it did fetch
    assert list(models.iterdir()) == []  # no file, no .part, no stamp


def test_missing_member_is_a_registry_error(stand_in, monkeypatch):
    _, _, models = stand_in
    real = wheels.download_wheel

    def wrong_member(spec, dest_dir, quiet, bar=None):
        w = real(spec, dest_dir, quiet)
        with zipfile.ZipFile(w, "w") as z:   # rewrite it without the member
            z.writestr("other.txt", "x")
        return w

    monkeypatch.setattr(wheels, "download_wheel", wrong_member)
    with pytest.raises(RegistryError, match="no member"):
        ensure_model("fake", quiet=True)
    assert list(models.iterdir()) == []


def test_download_failure_is_a_registry_error(stand_in, monkeypatch):
    _, _, models = stand_in

    def fail(spec, dest_dir, quiet, bar=None):
        raise RegistryError(f"could not download {spec}: no network")

    monkeypatch.setattr(wheels, "download_wheel", fail)
    with pytest.raises(RegistryError, match="could not download fake-part0==1.0"):
        ensure_model("fake", quiet=True)
    assert list(models.iterdir()) == []


def test_unknown_alias(stand_in):
    with pytest.raises(RegistryError, match=r"unknown model alias 'nope' \(known: fake, nosource\)"):
        ensure_model("nope", quiet=True)


def test_entry_without_source(stand_in):
    with pytest.raises(RegistryError, match="no source"):
        ensure_model("nosource", quiet=True)


def test_load_registry_and_resolve(stand_in, tmp_path):
    default, entries = load_registry()
    assert default == "fake"
    assert entries["fake"].file == "fake-model.gguf" and len(entries["fake"].parts) == len(PARTS)
    # None -> the default alias, fetched
    assert resolve_model(None).read_bytes() == WHOLE
    # a path is returned as is, existing or not
    other = tmp_path / "elsewhere.gguf"
    assert resolve_model(str(other)) == other


def test_real_models_toml_entries_are_well_formed(monkeypatch):
    monkeypatch.delenv("LLMLITE_MODELS_TOML", raising=False)
    monkeypatch.setenv("LLMLITE_CONFIG", "/nonexistent")
    default, entries = load_registry()
    assert default in entries and {"smollm2-135m", "gemma3-270m"} <= set(entries)
    for e in entries.values():
        assert e.file.endswith(".gguf") and e.license and e.description
        assert e.parts or (e.hf_repo.count("/") == 1 and e.hf_file.endswith(".gguf"))
        if e.parts:                                   # PyPI wheels: a pinned version and a hash
            assert len(e.sha256) == 64 and e.size
        if e.sha256 is None:                          # left to the hub's LFS sha256
            assert e.hf_repo
        if e.revision is not None:
            assert len(e.revision) == 40 and int(e.revision, 16) >= 0
        for part in e.parts:
            assert "==" in part["wheel"] and part["member"]
        assert set(e.sampling) <= {"temperature", "top_k", "top_p", "min_p", "repeat_penalty"}


def test_entry_fields_are_checked(stand_in, tmp_path):
    """hf = "org/repo:file.gguf", size, license and sampling are read; a malformed
    entry is one clear error naming it"""
    toml = tmp_path / "models.toml"
    toml.write_text('[models.q]\nhf = "org/repo:sub/q-Q4_K_M.gguf"\nsize = 123\nlicense = "mit"\n'
                    'sampling = { temp = 0.7, top_k = 20 }\n')
    _, entries = load_registry()
    e = entries["q"]
    assert (e.hf_repo, e.hf_file, e.file, e.size, e.license, e.sha256) == \
        ("org/repo", "sub/q-Q4_K_M.gguf", "q-Q4_K_M.gguf", 123, "mit", None)
    assert e.sampling == {"temperature": 0.7, "top_k": 20} and isinstance(e.sampling["top_k"], int)
    for body, why in [('hf = "org/repo/file.gguf"', "org/repo:file.gguf"),
                      ('hf = "o/r:f.gguf"\nsha256 = "xyz"', "64 hex"),
                      ('hf = "o/r:f.gguf"\nsampling = { temperature = 1 }', "sampling.temperature"),
                      ('hf = "o/r:f.gguf"\nsize = -1', "size"),
                      ('file = "f.gguf"', "needs sha256"),
                      ('parts = [{ wheel = "a==1", member = "m" }]\nfile = "f.gguf"', "needs sha256"),
                      ('parts = [{ wheel = "a==1", member = "m" }]\nsha256 = "' + "ab" * 32 + '"', "needs file"),
                      ('hf = "o/r:f.gguf"\nsampling = 3', "sampling must be a table"),
                      ('hf = "o/r:f.gguf"\nsampling = { temp = -3 }', "--temp must be >= 0"),
                      ('hf = "o/r:f.gguf"\nsampling = { top_p = 7 }', "--top-p must be in"),
                      ('hf = "o/r:f.gguf"\nrevision = 12', "revision")]:
        toml.write_text(f"[models.bad]\n{body}\n")
        with pytest.raises(RegistryError, match=f"entry 'bad'.*{why}"):
            load_registry()


def test_wrong_size_is_rejected(stand_in, tmp_path):
    set_toml, calls, models = stand_in
    toml = tmp_path / "models.toml"
    toml.write_text(toml.read_text().replace('description = "a stand-in"', f"size = {len(WHOLE) + 1}"))
    with pytest.raises(RegistryError, match=f"{len(WHOLE)} bytes fetched, models.toml says {len(WHOLE) + 1}"):
        ensure_model("fake", quiet=True)
    assert not list(models.glob("*.gguf*"))


def test_sampling_defaults_fill_what_the_command_line_leaves(stand_in, tmp_path):
    from llmlite.cli.loading import apply_model_defaults as _model_defaults
    from llmlite.cli.options import GenOptions as _Gen

    toml = tmp_path / "models.toml"
    toml.write_text(toml.read_text().replace('description = "a stand-in"',
                                             "sampling = { temp = 0.3, top_k = 7, min_p = 0.2 }"))
    gen = _Gen(None, None, None, 0.5, 0.1, None, None, True, 8)      # --top-p 0.5 --min-p 0.1
    _model_defaults(gen, None)                                       # the default alias, "fake"
    k = gen.kwargs
    assert (k["temperature"], k["top_k"], k["top_p"], k["min_p"], k["repeat_penalty"]) == (0.3, 7, 0.5, 0.1, None)
    gen = _Gen(None, 0.0, None, None, None, None, None, True, 8)
    _model_defaults(gen, "fake")
    assert gen.kwargs["temperature"] == 0.0 and gen.kwargs["top_k"] == 7
    real = tmp_path / "fake"                    # a file of that name is a path, not the alias
    real.write_bytes(b"")
    import os
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        gen = _Gen(None, None, None, None, None, None, None, True, 8)
        _model_defaults(gen, "fake")
    finally:
        os.chdir(cwd)
    assert gen.kwargs["temperature"] is None


def test_user_models_toml_adds_and_overrides(tmp_path, monkeypatch):
    """a models.toml in the user's config folder adds aliases, replaces those of the
    same name, and may change the default; a broken one is one clear error"""
    monkeypatch.setenv("LLMLITE_CONFIG", str(tmp_path))
    shipped_default, shipped = load_registry()
    (tmp_path / "models.toml").write_text(
        'default = "mine"\n'
        '[models.mine]\nfile = "mine.gguf"\nsha256 = "' + "ab" * 32 + '"\n'
        'hf_repo = "org/repo"\nhf_file = "mine.gguf"\n'
        f'[models.{shipped_default}]\nfile = "other.gguf"\nsha256 = "' + "cd" * 32 + '"\n')
    default, entries = load_registry()
    assert default == "mine" and entries["mine"].hf_repo == "org/repo"
    assert entries[shipped_default].file == "other.gguf"
    assert set(shipped) <= set(entries)
    (tmp_path / "models.toml").write_text("[models.bad\n")
    with pytest.raises(RegistryError, match="models.toml"):
        load_registry()


def test_models_toml_cannot_reach_outside_the_cache(stand_in, tmp_path, monkeypatch):
    """A file of "../../b/canary.txt" (and a wrong sha256) made `run` delete the canary
    as a corrupt download, and `rm` remove it: now the entry is refused, one line
    naming it, before anything is touched. The same for a Hugging Face path."""
    from helpers import llmlite

    canary = tmp_path / "b" / "canary.txt"
    canary.parent.mkdir()
    canary.write_text("keep me")
    conf = tmp_path / "conf"
    conf.mkdir()
    env = {"LLMLITE_CACHE": tmp_path / "cache", "LLMLITE_CONFIG": conf, "LLMLITE_MODELS_TOML": tmp_path / "models.toml"}
    for body in ['file = "../../b/canary.txt"\nsha256 = "' + "0" * 64 + '"\nparts = [{ wheel = "fake-part0==1.0", '
                 f'member = "{_member(0)}" }}]',
                 'file = "/etc/passwd"\nsha256 = "' + "0" * 64 + '"\nparts = []',
                 'hf = "org/repo:../../../../../b/canary.txt"']:
        (conf / "models.toml").write_text(f"[models.evil]\n{body}\n")
        monkeypatch.setenv("LLMLITE_CONFIG", str(conf))
        with pytest.raises(RegistryError, match="entry 'evil'"):
            ensure_model("evil", quiet=True)
        for args in (["run", "evil", "-p", "hi", "-n", "1"], ["rm", "evil"]):
            r = llmlite(*args, env=env, timeout=60)
            assert r.returncode == 2 and r.stderr.startswith("error: models.toml entry 'evil'"), r.stderr
            assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert canary.read_text() == "keep me"


def test_two_fetches_of_one_model_at_once(stand_in, monkeypatch):
    """Two processes (here threads, each with its own lock file handle, as two
    processes have) fetching one model into an empty cache: they wrote one .part file
    together, and one failed. Now the second waits and takes the first one's file."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    _, calls, models = stand_in
    real, started = wheels.download_wheel, threading.Barrier(2, timeout=5)

    def slow(spec, dest_dir, quiet, bar=None):
        time.sleep(0.05)                 # long enough for the other fetch to be under way
        return real(spec, dest_dir, quiet)

    def fetch(_):
        started.wait()
        return ensure_model("fake", quiet=True)

    monkeypatch.setattr(wheels, "download_wheel", slow)
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(fetch, range(2)))
    assert got == [models / "fake-model.gguf"] * 2
    assert hashlib.sha256(got[0].read_bytes()).hexdigest() == hashlib.sha256(WHOLE).hexdigest()
    assert calls == [f"fake-part{i}==1.0" for i in range(len(PARTS))]       # fetched once
    assert sorted(x.name for x in models.iterdir()) == ["fake-model.gguf", "fake-model.gguf.sha256"]


def _damage_in_place(p: Path) -> None:
    """flip one byte of p where it is (same inode, same size) and put its times back"""
    st = p.stat()
    time.sleep(0.02)                     # past the clock tick of the stamp (the kernel's is coarse)
    with open(p, "r+b") as f:
        f.seek(st.st_size // 2)
        b = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([b[0] ^ 1]))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (p.stat().st_size, p.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_a_byte_changed_with_its_time_kept_is_caught(stand_in, capsys):
    """size and modified time are not the file's identity: the stamp has the change time"""
    _, calls, _ = stand_in
    p = ensure_model("fake", quiet=True)
    n = len(calls)
    _damage_in_place(p)
    assert ensure_model("fake", quiet=True) == p
    assert p.read_bytes() == WHOLE and len(calls) == 2 * n
    err = capsys.readouterr().err
    assert "fake-model.gguf: sha256 mismatch" in err and "the cached file was deleted" in err, err


def test_pull_and_list_verify_hash_again(stand_in, capsys):
    """a damaged file whose stamp still vouches for it (the fast path is trusted at
    load time): `pull` and `list --verify` hash it again, delete it and say so"""
    import json

    _, calls, _ = stand_in
    p = ensure_model("fake", quiet=True)
    n = len(calls)

    def damage():
        _damage_in_place(p)
        registry._marker(p).write_text(registry._stamp(p, hashlib.sha256(WHOLE).hexdigest()))

    damage()
    assert ensure_model("fake", quiet=True) == p and p.read_bytes() != WHOLE      # the fast path trusts it
    assert registry.pull("fake", quiet=True, recheck=True) == p
    assert p.read_bytes() == WHOLE and len(calls) == 2 * n
    assert "sha256 mismatch" in capsys.readouterr().err

    r = llmlite("list", "--verify", "--json")
    assert r.returncode == 0, r.stderr
    assert {x["name"]: x for x in json.loads(r.stdout)}["fake"]["sha256"] == "ok"
    damage()
    r = llmlite("list", "--verify")
    assert r.returncode == 2 and not p.exists() and not registry._marker(p).exists()
    assert r.stderr.splitlines()[-1].startswith("error: 1 cached file(s) did not match their sha256 and were "
                                                "deleted: fake"), r.stderr
    assert re.search(r"^fake \* .* not pulled$", r.stdout, re.M), r.stdout


def _wheel(folder: Path, name: str, member: str, data: bytes) -> None:
    """a minimal wheel that pip accepts (a dist-info with METADATA, WHEEL and RECORD)"""
    di = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(folder / f"{name}-1.0-py3-none-any.whl", "w") as z:
        z.writestr(member, data)
        z.writestr(f"{di}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        z.writestr(f"{di}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{di}/RECORD", "")


def test_pypi_fetch_draws_the_download_bar(tmp_path):
    """the PyPI source through pip itself (a local index stands in for PyPI), on a
    terminal: the same Rich bar as `pull`, named after the model, full at the end"""
    pexpect = pytest.importorskip("pexpect")
    from helpers import spawn_llmlite

    index = tmp_path / "index"
    index.mkdir()
    data = [os.urandom(3 << 20), os.urandom(2 << 20)]
    for i, d in enumerate(data):
        _wheel(index, f"fakemodel{i}", f"fakemodel{i}/m.part", d)
    whole = b"".join(data)
    toml = tmp_path / "models.toml"
    toml.write_text(f'default = "fm"\n[models.fm]\nfile = "fm.gguf"\nsha256 = "{hashlib.sha256(whole).hexdigest()}"\n'
                    f'size = {len(whole)}\nparts = [\n'
                    + "".join(f'  {{ wheel = "fakemodel{i}==1.0", member = "fakemodel{i}/m.part" }},\n'
                              for i in range(2)) + "]\n")
    env = {"LLMLITE_CACHE": tmp_path / "cache", "LLMLITE_MODELS_TOML": toml, "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": index, "HF_HUB_DISABLE_PROGRESS_BARS": None, "TERM": "xterm"}
    c = spawn_llmlite("pull", "fm", env=env, encoding="utf-8", timeout=120, dimensions=(24, 160))
    c.expect(pexpect.EOF)
    c.close()
    assert c.exitstatus == 0, c.before
    assert re.search(r"fm \(PyPI\).* 5\.2/5\.2 MB", c.before), c.before
    assert (tmp_path / "cache" / "models" / "fm.gguf").read_bytes() == whole
