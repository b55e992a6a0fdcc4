"""`llmlite pull / list / rm` with the real huggingface_hub client against a local
stand-in of the hub (tests/hub_standin.py): a clean pull into the Hugging Face
cache, a download cut at 50% and resumed, a corrupted file rejected and removed,
offline mode with and without the file cached, org/repo:QUANT picking, list, rm."""
import os
import re
from pathlib import Path

import pytest

from helpers import llmlite, spawn_llmlite
from hub_standin import Hub


@pytest.fixture()
def hub(tiny_path, tmp_path):
    h = Hub()
    data = tiny_path.read_bytes()
    h.files["org/tiny-GGUF"] = {"tiny-Q4_K_M.gguf": data, "tiny-Q8_0.gguf": data[:-4096] + bytes(4096),
                                "README.md": b"# tiny\n"}
    h.data = data
    # what every run against it has: the stand-in's address, its own caches, no bars, online
    h.env = {"HF_ENDPOINT": h.url, "HF_HOME": str(tmp_path / "hf"), "LLMLITE_CACHE": str(tmp_path / "llmlite"),
             "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HUB_OFFLINE": None}
    yield h
    h.close()


def run(hub, *args, **env):
    return llmlite(*args, timeout=120, env={**hub.env, **env})


def test_clean_pull_list_rm(hub, tmp_path):
    r = run(hub, "pull", "hf://org/tiny-GGUF/tiny-Q4_K_M.gguf")
    assert r.returncode == 0, r.stderr
    assert "sha256 verified" in r.stderr
    cached = list((tmp_path / "hf").rglob("tiny-Q4_K_M.gguf"))
    assert cached and cached[0].read_bytes() == hub.data          # in the Hugging Face cache
    r = run(hub, "list")
    assert r.returncode == 0 and "hf://org/tiny-GGUF/tiny-Q4_K_M.gguf" in r.stdout and "llama" in r.stdout
    r = run(hub, "rm", "hf://org/tiny-GGUF/tiny-Q4_K_M.gguf")
    assert r.returncode == 0 and "removed" in r.stderr
    assert "tiny-Q4_K_M" not in run(hub, "list").stdout
    r = run(hub, "rm", "hf://org/tiny-GGUF/tiny-Q4_K_M.gguf")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "not in the cache" in r.stderr


def test_repo_and_quant(hub, tmp_path):
    r = run(hub, "pull", "org/tiny-GGUF")                        # Q4_K_M by default
    assert r.returncode == 0, r.stderr
    assert "tiny-Q4_K_M.gguf" in r.stderr
    r = run(hub, "pull", "org/tiny-GGUF:q8_0")
    assert r.returncode == 0 and "tiny-Q8_0.gguf" in r.stderr, r.stderr
    r = run(hub, "pull", "org/tiny-GGUF:Q2_K")
    assert r.returncode == 2 and "no Q2_K GGUF" in r.stderr


def test_interrupted_pull_resumes(hub, tmp_path):
    """The connection drops at 50% of a 64 MiB file: the download goes on from what
    arrived (a byte range; the client keeps whole 10 MiB chunks), not from the start."""
    big = os.urandom(64 << 20)
    hub.files["org/big-GGUF"] = {"big-Q4_K_M.gguf": big}
    hub.cut_once.add(("org/big-GGUF", "big-Q4_K_M.gguf"))
    r = run(hub, "pull", "hf://org/big-GGUF/big-Q4_K_M.gguf")
    assert r.returncode == 0, r.stderr
    assert "resume" in r.stderr.lower()
    print(f"bytes served {hub.bytes_sent} for a file of {len(big)}: x{hub.bytes_sent / len(big):.3f}")
    assert hub.bytes_sent <= 1.1 * len(big)
    assert list((tmp_path / "hf").rglob("big-Q4_K_M.gguf"))[0].read_bytes() == big


def test_corrupted_file_is_rejected_and_removed(hub, tmp_path):
    hub.corrupt.add(("org/tiny-GGUF", "tiny-Q4_K_M.gguf"))
    r = run(hub, "pull", "hf://org/tiny-GGUF/tiny-Q4_K_M.gguf")
    assert r.returncode != 0
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "sha256 mismatch" in line and "deleted" in line, r.stderr
    assert not [p for p in (tmp_path / "hf").rglob("*") if p.is_file() and p.stat().st_size > 100000]


def test_offline(hub, tmp_path):
    r = run(hub, "pull", "hf://org/tiny-GGUF/tiny-Q4_K_M.gguf", HF_HUB_OFFLINE="1")
    assert r.returncode != 0 and "HF_HUB_OFFLINE" in r.stderr.strip().splitlines()[-1], r.stderr
    assert run(hub, "pull", "hf://org/tiny-GGUF/tiny-Q4_K_M.gguf").returncode == 0
    sent = hub.bytes_sent
    r = run(hub, "pull", "hf://org/tiny-GGUF/tiny-Q4_K_M.gguf", HF_HUB_OFFLINE="1")
    assert r.returncode == 0, r.stderr
    assert hub.bytes_sent == sent                                # from the cache, nothing downloaded


def test_run_pulls_on_first_use(hub, tmp_path):
    r = run(hub, "run", "org/tiny-GGUF:Q4_K_M", "-p", "Hi", "-n", "2", "--temp", "0")
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "hf").rglob("tiny-Q4_K_M.gguf"))


def test_progress_bar_in_a_terminal(hub, tmp_path):
    """On a terminal the download shows a Rich bar: bytes, speed and time left"""
    pexpect = pytest.importorskip("pexpect")
    hub.files["org/slow-GGUF"] = {"slow-Q4_K_M.gguf": os.urandom(24 << 20)}
    hub.rate = 12 << 20                  # 2 s for the file; the client reports each 10 MiB it writes
    c = spawn_llmlite("pull", "org/slow-GGUF", env={**hub.env, "HF_HUB_DISABLE_PROGRESS_BARS": None, "TERM": "xterm"},
                      encoding="utf-8", timeout=60, dimensions=(24, 160))
    c.expect(pexpect.EOF)
    c.close()
    out = c.before
    assert c.exitstatus == 0, out
    part = [float(x) for x in re.findall(r" (\d+\.\d)/25\.2 MB", out)]
    assert any(0 < x < 25.2 for x in part), out                                   # the file's bar, on its way
    assert re.search(r"slow-Q4_K_M\.gguf.* 25\.2/25\.2 MB", out), out            # and full
    assert re.search(r"\d+(\.\d+)? [kM]B/s", out) and re.search(r"eta \d+:\d\d:\d\d", out), out
    assert "sha256 verified" in out


def test_alias_from_hub_list_and_last_used(hub, tmp_path):
    """A models.toml alias with a Hugging Face source: pulled into the hub's cache,
    listed under its name with what the file is; `run` records when it was last used"""
    import hashlib
    import json

    conf = tmp_path / "conf"
    conf.mkdir()
    sha = hashlib.sha256(hub.data).hexdigest()
    (conf / "models.toml").write_text(f'[models.tiny]\nhf = "org/tiny-GGUF:tiny-Q4_K_M.gguf"\nsha256 = "{sha}"\n'
                                      f'size = {len(hub.data)}\nlicense = "mit"\n')
    env = {"LLMLITE_CONFIG": str(conf)}
    r = run(hub, "list", "--json", **env)
    rows = {x["name"]: x for x in json.loads(r.stdout)}
    assert rows["tiny"]["source"] == "not pulled" and rows["tiny"]["size"] == len(hub.data)
    assert rows["smollm2-135m"]["default"]
    r = run(hub, "pull", "tiny", **env)
    assert r.returncode == 0, r.stderr
    assert list((tmp_path / "hf").rglob("tiny-Q4_K_M.gguf"))
    rows = {x["name"]: x for x in json.loads(run(hub, "list", "--json", **env).stdout)}
    t = rows["tiny"]
    assert (t["source"], t["arch"], t["size"], t["last_used"]) == ("hugging face cache", "llama", len(hub.data),
                                                                     "never")
    assert t["quant"] != "?" and t["context"] > 0
    assert run(hub, "run", "tiny", "-p", "Hi", "-n", "1", **env).returncode == 0
    t = {x["name"]: x for x in json.loads(run(hub, "list", "--json", **env).stdout)}["tiny"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", t["last_used"]), t
    out = run(hub, "list", **env).stdout
    assert re.search(r"^tiny\s+\S+ [KM]iB\s+\S+\s+llama\s+\d+\s+\d{4}-", out, re.M), out


def test_progress_bar_takes_the_xet_downloaders_calls():
    """Files stored on Xet download through another reporter (set_postfix_str, total,
    n, refresh, update_transfer): the bar takes those calls too, and draws one bar"""
    import io

    from huggingface_hub.utils._xet_progress_reporting import XetDownloadProgressReporter
    from rich.console import Console

    from llmlite.download_bar import RichBar as _RichBar

    class Report:
        def __init__(self, done, sent):
            self.total_bytes_completed, self.total_transfer_bytes_completed = done, sent
            self.total_bytes_completion_rate = self.total_transfer_bytes_completion_rate = 1e6
            self.total_bytes = 3_000_000

    buf = io.StringIO()
    _RichBar.console = Console(file=buf, force_terminal=True, width=120)
    try:
        with XetDownloadProgressReporter(reconstruction_desc="(…)/org/repo/model-Q4_K_M.gguf: reconstructing file",
                                         total=3_000_000, log_level=20, tqdm_class=_RichBar) as rep:
            assert rep.transfer_bar is rep.reconstruction_bar                  # one bar
            rep.update_progress(Report(1_000_000, 1_200_000))
            assert rep.reconstruction_bar.n == 1_000_000
            rep.update_progress(Report(3_000_000, 2_500_000))
    finally:
        _RichBar.console = None
    out = buf.getvalue()
    assert "model-Q4_K_M.gguf" in out and "3.0/3.0 MB" in out and "reconstructing" not in out
    assert _RichBar._progress is None                                           # the display ended


def test_names_outside_the_caches_are_refused(hub, tmp_path):
    """`pull hf://../../etc/passwd` was the hub client's HFValidationError, a
    traceback; a repo or file path with .. in it is now one line, for pull and rm"""
    from llmlite.registry import RegistryError, parse_hf_name

    for name in ("hf://../../etc/passwd", "hf://org/tiny-GGUF/../../../x.gguf", "hf://org/..:x/y.gguf",
                 "../..:Q4_K_M", "hf://org/tiny-GGUF/a//b.gguf", "hf://org/tiny-GGUF/a\\..\\b.gguf"):
        with pytest.raises(RegistryError, match="not a"):
            parse_hf_name(name)
    for cmd in ("pull", "rm"):
        r = run(hub, cmd, "hf://../../etc/passwd")
        assert r.returncode == 2 and r.stderr == "error: hf://../../etc/passwd: '../..' is not a Hugging Face " \
                                                 "repo (org/name)\n", r.stderr
    assert parse_hf_name("hf://org/tiny-GGUF/sub/tiny.gguf") == ("org/tiny-GGUF", "sub/tiny.gguf", None)


def test_two_pulls_at_once(hub, tmp_path):
    """Two `llmlite pull` of one Hugging Face file into an empty cache, at once: both
    succeed (the hub client locks the blob it writes), and the file is whole"""
    import hashlib

    from helpers import start_llmlite

    data = os.urandom(6 << 20)
    hub.files["org/two-GGUF"] = {"two-Q4_K_M.gguf": data}
    hub.rate = 12 << 20                                          # 0.5 s a download: the two overlap
    procs = [start_llmlite("pull", "hf://org/two-GGUF/two-Q4_K_M.gguf", env=hub.env) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    got = list((tmp_path / "hf").rglob("two-Q4_K_M.gguf"))
    assert len(got) == 1 and hashlib.sha256(got[0].read_bytes()).digest() == hashlib.sha256(data).digest()


def test_rm_keeps_a_linked_file_outside_the_cache(hub, tmp_path):
    """A snapshot entry in the Hugging Face cache that links outside it (planted by
    someone else): `rm` removes the link, never the file it points to"""
    from hub_standin import COMMIT

    canary = tmp_path / "canary.gguf"
    canary.write_bytes(hub.data)
    repo = tmp_path / "hf" / "hub" / "models--org--evil-GGUF"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    (repo / "blobs").mkdir()
    snap = repo / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    (snap / "evil-Q4_K_M.gguf").symlink_to(canary)
    r = run(hub, "rm", "hf://org/evil-GGUF/evil-Q4_K_M.gguf")
    assert r.returncode == 0 and "removed" in r.stderr, r.stderr
    assert not (snap / "evil-Q4_K_M.gguf").is_symlink() and canary.read_bytes() == hub.data


def _closed_port() -> int:
    """a local port nothing listens on: a connection to it is refused at once"""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name", ["nosuchorg/repo-GGUF", "hf://nosuchorg/repo-GGUF/x.gguf"])
def test_no_network_is_one_line_at_once(hub, tmp_path, name):
    """the hub client would retry a refused connection for 24 s and end in a traceback-like
    `internal error: ConnectError`; one short retry, then one line"""
    r = llmlite("pull", name, timeout=10, env={**hub.env, "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"})
    assert r.returncode == 2, r.stderr
    want = f"error: {name.removeprefix('hf://')}: no network (or the hub is unreachable)"
    assert r.stderr.strip().splitlines() == [want], r.stderr


@pytest.mark.parametrize("name,why", [("org/nosuch", "no such repository"),
                                      ("hf://org/nosuch/x.gguf", "no such repository"),
                                      ("hf://org/tiny-GGUF/x.gguf", "no such file")])
def test_not_on_the_hub_is_one_line(hub, tmp_path, name, why):
    r = run(hub, "pull", name)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and why in lines[0], r.stderr


def test_offline_repo_without_a_file_name(hub, tmp_path):
    """picking a file needs the hub's listing: offline, say to name the file (was the
    hub client's own message, exit 1)"""
    r = run(hub, "pull", "org/tiny-GGUF", HF_HUB_OFFLINE="1")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == ["error: org/tiny-GGUF: HF_HUB_OFFLINE is set: name the file "
                                             "(hf://org/tiny-GGUF/FILE.gguf)"], r.stderr


def test_a_damaged_cached_file_is_found_deleted_and_fetched_again(hub, tmp_path):
    """pull hashes a cached file again (even one its stamp vouches for): a mismatch is
    deleted, said, and fetched once more; list --verify deletes one and says so"""
    from test_registry import _damage_in_place

    assert run(hub, "pull", "org/tiny-GGUF").returncode == 0
    blob = next((tmp_path / "hf").rglob("tiny-Q4_K_M.gguf")).resolve()
    _damage_in_place(blob)
    r = run(hub, "pull", "org/tiny-GGUF")
    assert r.returncode == 0, r.stderr
    assert "sha256 mismatch" in r.stderr and "deleted; fetching it again" in r.stderr, r.stderr
    assert next((tmp_path / "hf").rglob("tiny-Q4_K_M.gguf")).read_bytes() == hub.data

    r = run(hub, "list", "--verify")
    assert r.returncode == 0 and re.search(r"tiny-Q4_K_M\.gguf .* ok +hugging face cache", r.stdout), r.stdout
    _damage_in_place(next((tmp_path / "hf").rglob("tiny-Q4_K_M.gguf")).resolve())
    r = run(hub, "list", "--verify")
    assert r.returncode == 2 and "were deleted: hf://org/tiny-GGUF/tiny-Q4_K_M.gguf" in r.stderr, r.stderr
    assert not list((tmp_path / "hf").rglob("tiny-Q4_K_M.gguf")) and not blob.exists()
    assert "tiny-Q4_K_M" not in run(hub, "list").stdout


def test_the_usage_record_keeps_cached_models_only(hub, tiny_path, tmp_path, monkeypatch):
    """`run` of a file outside the caches (a test's temporary file) is not recorded;
    the record drops files gone since and keeps the newest usage.MAX_ENTRIES"""
    import json

    from llmlite import usage

    record = tmp_path / "llmlite" / "models" / ".last_used.json"
    assert run(hub, "run", str(tiny_path), "-p", "Hi", "-n", "1").returncode == 0
    assert not record.exists() or str(tiny_path.resolve()) not in json.loads(record.read_text())
    monkeypatch.setenv("LLMLITE_CACHE", str(tmp_path / "llmlite"))
    monkeypatch.setattr(usage, "MAX_ENTRIES", 3)
    files = []
    for i in range(5):
        files.append(tmp_path / "llmlite" / "models" / f"m{i}.gguf")
        files[-1].parent.mkdir(parents=True, exist_ok=True)
        files[-1].write_bytes(b"x")
        usage.note_used(files[-1])
    files[4].unlink()
    usage.note_used(files[3])
    assert sorted(Path(k).name for k in json.loads(record.read_text())) == ["m2.gguf", "m3.gguf"]
    assert usage.last_used(files[3]) > usage.last_used(files[2]) and usage.last_used(files[0]) is None


def test_verify_a_bad_blob_shared_by_two_snapshots(tmp_path):
    """two snapshots linking one blob that does not match its name (its sha256): list
    --verify deletes the blob and both links (a dangling one would hide the repo from
    later listings), counts both, and the cache lists cleanly afterwards"""
    repo = tmp_path / "hf" / "hub" / "models--org--m-GGUF"
    blob = repo / "blobs" / ("ab" * 32)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"GGUF not what the name says")
    for rev in ("a" * 40, "b" * 40):
        link = repo / "snapshots" / rev / "m.gguf"
        link.parent.mkdir(parents=True)
        link.symlink_to(blob)
    env = {"HF_HOME": str(tmp_path / "hf"), "LLMLITE_CACHE": str(tmp_path / "llmlite"), "HF_HUB_OFFLINE": "1"}
    r = llmlite("list", "--verify", env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.splitlines()[-1].startswith("error: 2 cached file(s) did not match their sha256"), r.stderr
    assert not blob.exists() and not [p for p in (repo / "snapshots").rglob("*") if p.is_symlink()]
    r = llmlite("list", env=env)
    assert r.returncode == 0 and "m-GGUF" not in r.stdout, r.stderr
