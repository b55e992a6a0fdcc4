"""`llmlite run`, `llmlite chat` and `llmlite tokenize`, driven as a user would (subprocess)."""
import json
import os
import signal
import subprocess
import time

import pytest

from helpers import LLMLITE, cli_env, llmlite, rewrite_gguf, start_llmlite


def _stats_ok(stderr):
    lines = [ln for ln in stderr.splitlines() if ln.startswith("prompt ")]
    assert lines, stderr
    for ln in lines:
        assert "t/s" in ln and "generated" in ln and "stop:" in ln
    return lines


# ---- run -p ------------------------------------------------------------------------------

def test_run_smollm2_chat_prompt(smollm2_path):
    # the brief's "What is the capital of France?" alone has a 0.25-logit top-2 margin at the
    # first token under the default system prompt; this wording answers with margins > 1
    r = llmlite("run", "smollm2-135m", "-p", "What is the capital of France? Answer in one sentence.",
                "-n", "16", "--temp", "0", "-c", "512")
    assert r.returncode == 0, r.stderr
    assert "Paris" in r.stdout
    assert "t/s" not in r.stdout and "stop:" not in r.stdout    # stats go to stderr only
    (line,) = _stats_ok(r.stderr)
    assert "Paris" not in r.stderr
    assert "stop: eos" in line or "stop: length" in line
    assert "lookup:" in line


def test_run_gemma3_raw(gemma3_path):
    r = llmlite("run", "gemma3-270m", "--raw", "-p", "The capital of France is", "-n", "8", "--temp", "0",
                "-c", "256")
    assert r.returncode == 0, r.stderr
    assert "France" in r.stdout and "The capital of France is" not in r.stdout   # the prompt is not echoed
    (line,) = _stats_ok(r.stderr)
    assert "prompt 6 tokens" in line and "generated 8 tokens" in line and "stop: length" in line


def test_run_is_deterministic_and_raw_matches_api(tiny_path):
    import llmlite as api

    args = ("run", tiny_path, "--raw", "-p", "Hello world", "-n", "12", "--temp", "0", "--no-lookup")
    a, b = llmlite(*args), llmlite(*args)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    m = api.load(tiny_path, n_ctx=256)
    want = "".join(m.generate("Hello world", max_tokens=12, temperature=0))
    assert a.stdout == want + ("" if want.endswith("\n") else "\n")
    assert "lookup:" not in a.stderr


def test_run_prompt_file_and_sampling(tiny_path, tmp_path):
    f = tmp_path / "prompt.txt"
    f.write_text("Hello world\n", encoding="utf-8")
    r1 = llmlite("run", tiny_path, "--raw", "-f", f, "-n", "10", "--temp", "0")
    r2 = llmlite("run", tiny_path, "--raw", "-p", "Hello world", "-n", "10", "--temp", "0")
    assert r1.returncode == 0 and r1.stdout == r2.stdout     # one trailing newline dropped, as llama.cpp
    s1 = llmlite("run", tiny_path, "--raw", "-p", "Hello", "-n", "10", "--temp", "1.5", "--seed", "7", "--top-k", "0")
    s2 = llmlite("run", tiny_path, "--raw", "-p", "Hello", "-n", "10", "--temp", "1.5", "--seed", "7", "--top-k", "0")
    assert s1.returncode == 0 and s1.stdout == s2.stdout


def test_run_system_prompt_reaches_template(tiny_path, tmp_path):
    # a template that prints the conversation it was given, then asks for nothing more
    t = rewrite_gguf(tiny_path, tmp_path / "echo.gguf", kv={
        "tokenizer.chat_template": "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}"})
    import llmlite as api
    from llmlite.chat import Chat
    from llmlite.generate import GenStats

    m = api.load(t, n_ctx=256)
    want_prompt = len(m.tokenize("[system:Be terse.][user:Hi]", add_special=False, parse_special=True))
    r = llmlite("run", t, "-sys", "Be terse.", "-p", "Hi", "-n", "1", "--temp", "0")
    assert r.returncode == 0, r.stderr
    assert f"prompt {want_prompt} tokens" in r.stderr
    st = GenStats()
    list(Chat(m, system="Be terse.").reply("Hi", max_tokens=1, temperature=0, stats=st))
    assert st.prompt_tokens == want_prompt


@pytest.mark.parametrize("args, msg", [
    (["-p", "x", "-f", "y"], "not both"),
    (["-p", "x", "--top-p", "2"], "--top-p"),
    (["-p", "x", "--temp", "-1"], "--temp"),
    (["-p", "x", "-n", "-5"], "-n must be"),
    (["-p", "x", "-ngl", "lots"], "-ngl"),
    (["-p", "x", "-c", "-3"], "ctx-size"),
    (["-p", "x", "--draft-max", "0"], "draft-max"),
    (["--raw", "-p", ""], "empty"),
])
def test_run_bad_input_is_one_line(tiny_path, args, msg):
    r = llmlite("run", tiny_path, *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], r.stderr


def test_run_missing_model_and_file(tmp_path):
    r = llmlite("run", tmp_path / "nope.gguf", "-p", "x")
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "nope.gguf" in r.stderr
    r = llmlite("run", "no-such-alias", "-p", "x")
    assert r.returncode == 2 and "unknown model alias" in r.stderr



# the same bytes to every command that reads the user's text: one reader, one answer
_NOT_TEXT = bytes(range(256))           # 0x80 at offset 128 is the first byte that is not UTF-8


@pytest.mark.parametrize("args, via_stdin", [
    (["run", "{m}", "-f", "{f}"], False),
    (["run", "{m}", "-f", "-"], True),
    (["tokenize", "{m}", "-"], True),
    (["perplexity", "{m}", "-f", "{f}"], False),
], ids=["run-f", "run-stdin", "tokenize-stdin", "perplexity-f"])
def test_binary_input_is_refused_alike(tiny_path, tmp_path, args, via_stdin):
    f = tmp_path / "blob.bin"
    f.write_bytes(_NOT_TEXT)
    argv = [a.format(m=tiny_path, f=f) for a in args]
    r = subprocess.run([*LLMLITE, *argv], input=_NOT_TEXT if via_stdin else b"", capture_output=True,
                       timeout=60, env=cli_env())
    name = "stdin" if via_stdin else str(f)
    assert (r.returncode, r.stdout, r.stderr.decode()) == \
        (2, b"", f"error: {name} is not UTF-8 text (byte 0x80 at offset 128)\n")


def test_bom_and_crlf_text_is_read_as_text(tiny_path, tmp_path):
    """a BOM (an editor's mark) is not part of the text; CRLF line ends are kept as they are"""
    f = tmp_path / "bom.txt"
    f.write_bytes("\ufeffHello\r\nworld\n".encode())
    plain = llmlite("tokenize", tiny_path, "--json", "Hello\r\nworld\n")
    piped = llmlite("tokenize", tiny_path, "--json", "-", input=f.read_bytes().decode())
    assert piped.returncode == 0 and piped.stdout == plain.stdout, piped.stderr
    r1 = llmlite("run", tiny_path, "--raw", "-f", f, "-n", "3", "--temp", "0")
    r2 = llmlite("run", tiny_path, "--raw", "-p", "Hello\r\nworld", "-n", "3", "--temp", "0")
    assert r1.returncode == 0 and r1.stdout == r2.stdout, r1.stderr

@pytest.mark.parametrize("template, msg", [
    ("{{ ''.__class__.__mro__ }}", "unsafe"),
    ("{{ raise_exception('only user and assistant roles') }}", "only user and assistant roles"),
    ("{% if %}", "syntax error"),
])
def test_run_bad_template_is_one_line(tiny_path, tmp_path, template, msg):
    t = rewrite_gguf(tiny_path, tmp_path / "bad.gguf", kv={"tokenizer.chat_template": template})
    r = llmlite("run", t, "-p", "Hi", "-n", "2")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    # --raw does not touch the template
    r = llmlite("run", t, "--raw", "-p", "Hi", "-n", "2", "--temp", "0")
    assert r.returncode == 0, r.stderr
    # --verbose shows the traceback
    r = llmlite("--verbose", "run", t, "-p", "Hi", "-n", "2")
    assert r.returncode == 2 and "Traceback" in r.stderr


def test_run_no_template_base_model_is_raw(tiny_path, tmp_path):
    t = rewrite_gguf(tiny_path, tmp_path / "base.gguf", drop_kv=("tokenizer.chat_template",))
    a = llmlite("run", t, "-p", "Hello world", "-n", "6", "--temp", "0", "-sys", "ignored")
    b = llmlite("run", t, "--raw", "-p", "Hello world", "-n", "6", "--temp", "0")
    assert a.returncode == 0 and a.stdout == b.stdout
    assert "-sys ignored" in a.stderr


def test_run_ngl_note(tiny_path):
    r = llmlite("run", tiny_path, "--raw", "-p", "Hi", "-n", "1", "-ngl", "auto")
    assert r.returncode == 0 and "GPU" not in r.stderr
    r = llmlite("run", tiny_path, "--raw", "-p", "Hi", "-n", "1", "-ngl", "99")
    assert r.returncode == 0
    from llmlite.offload import load_cuda

    if not load_cuda()[0]:
        assert "running on the CPU" in r.stderr and r.stderr.count("\n") <= 3


# ---- the REPL ------------------------------------------------------------------------------

def test_chat_repl_piped_smollm2(smollm2_path):
    turns = ("What is the capital of France? Answer in one sentence.\n"
             "And of Germany?\n"
             "/clear\n"
             "What is the capital of France? Answer in one sentence.\n"
             "/exit\n"
             "this is never read\n")
    r = llmlite("chat", "smollm2-135m", "-n", "12", "--temp", "0", "-c", "512", input=turns, timeout=300)
    assert r.returncode == 0, r.stderr
    replies = r.stdout.splitlines()
    assert len(replies) == 3, r.stdout
    assert "Paris" in replies[0] and "Berlin" in replies[1]
    assert replies[2] == replies[0]            # /clear: the same question from scratch, same answer
    stats = _stats_ok(r.stderr)
    assert len(stats) == 3
    assert "cached" not in stats[0] and "cached" in stats[1] and "cached" not in stats[2]
    assert "(conversation cleared)" in r.stderr
    assert "never" not in r.stdout


def test_chat_repl_commands_and_multiline(tiny_path):
    turns = "/help\n/system Be terse.\nfirst line\\\nsecond line\n/bogus\n\n/quit\n"
    r = llmlite("chat", tiny_path, "-n", "3", "--temp", "0", input=turns)
    assert r.returncode == 0, r.stderr
    assert "/clear" in r.stderr and "(system message set)" in r.stderr
    assert "error: unknown command /bogus" in r.stderr
    assert len(_stats_ok(r.stderr)) == 1          # one turn: the two lines joined, the empty one skipped
    # the joined turn is one user message with a newline inside
    import llmlite as api
    from llmlite.chat import Chat

    m = api.load(tiny_path, n_ctx=256)
    prompt = Chat(m, system="Be terse.")
    prompt.messages.append({"role": "user", "content": "first line\nsecond line"})
    assert f"prompt {len(prompt.prompt_ids())} tokens" in r.stderr


def test_chat_repl_eof_and_run_without_prompt(tiny_path):
    r = llmlite("run", tiny_path, "-n", "2", "--temp", "0", input="Hi\n")     # run without -p: the REPL
    assert r.returncode == 0, r.stderr
    assert len(_stats_ok(r.stderr)) == 1 and r.stdout.endswith("\n")
    r = llmlite("chat", tiny_path, input="")
    assert r.returncode == 0 and r.stdout == ""


def test_chat_repl_context_full_keeps_going(tiny_path):
    turns = ("word " * 300) + "\nHi\n"
    r = llmlite("chat", tiny_path, "-c", "128", "-n", "2", "--temp", "0", input=turns)
    assert r.returncode == 0, r.stderr
    assert "error: the conversation" in r.stderr and "does not fit" in r.stderr
    assert len(_stats_ok(r.stderr)) == 1


def test_chat_ctrl_c_stops_the_reply_not_the_chat(tiny_path):
    p = start_llmlite("chat", tiny_path, "-c", "1024", "-n", "200", "--temp", "1", "--seed", "1")
    try:
        p.stdin.write(b"Tell me a long story.\n")
        p.stdin.flush()
        first = p.stdout.read(1)          # the reply has started
        assert first
        p.send_signal(signal.SIGINT)
        time.sleep(0.3)
        out, err = p.communicate(b"Go on.\n/exit\n", timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = err.decode()
    assert p.returncode == 0, err
    assert "(reply interrupted)" in err
    stats = _stats_ok(err)
    assert len(stats) == 2 and "stop: interrupted" in stats[0]
    assert "cached" in stats[1]               # the partial reply stayed in the history and the cache


def test_chat_ctrl_c_at_prompt_exits_cleanly(tiny_path):
    p = start_llmlite("chat", tiny_path)
    try:
        p.stdin.write(b"/help\n")
        p.stdin.flush()
        buf = b""
        deadline = time.time() + 60
        while b"/exit" not in buf and time.time() < deadline:   # the REPL read /help: it waits for input now
            buf += os.read(p.stderr.fileno(), 4096)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert b"Traceback" not in err and b"error" not in err


# ---- tokenize ---------------------------------------------------------------------------

@pytest.mark.parametrize("alias, text, flags", [
    ("smollm2-135m", "Hello wörld <|im_start|>user\n 😀", []),
    ("smollm2-135m", "Hello wörld <|im_start|>user\n 😀", ["--parse-special"]),
    ("gemma3-270m", "The capital of France is <start_of_turn>", []),
    ("gemma3-270m", "The capital of France is <start_of_turn>", ["--parse-special", "--no-bos"]),
])
def test_tokenize_json_matches_model(request, alias, text, flags):
    path = request.getfixturevalue("smollm2_path" if alias.startswith("smollm2") else "gemma3_path")
    from llmlite.tokenizer import Tokenizer

    tok = Tokenizer.from_file(path)
    r = llmlite("tokenize", alias, text, "--json", *flags)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    want = tok.encode(text, add_special="--no-bos" not in flags, parse_special="--parse-special" in flags)
    assert [row["id"] for row in rows] == want
    for row in rows:
        b = bytes.fromhex(row["bytes_hex"])
        assert b == tok.piece(row["id"], special=True)
        assert row["piece"] == b.decode("utf-8", "replace")
    if alias == "gemma3-270m":
        assert (rows[0]["id"] == tok.bos_id) == ("--no-bos" not in flags)


def test_tokenize_table_and_model_api(smollm2_path):
    import llmlite as api

    m = api.load(smollm2_path, n_ctx=64)
    r = llmlite("tokenize", smollm2_path, "Hi there\n")
    assert r.returncode == 0, r.stderr
    ids = m.tokenize("Hi there\n")
    lines = r.stdout.splitlines()
    assert [int(ln.split()[0]) for ln in lines] == ids
    assert lines[-1].endswith('"\\n"')
    assert r.stderr.strip() == f"{len(ids)} tokens"


def test_chat_repl_set_show_save_load_regen_stats(tiny_path, tmp_path):
    conv = tmp_path / "conv.json"
    turns = (f"/set temp 0\n/set top_k 5\n/set top_k -3\n/set bogus 1\n/set ctx 4096\n/set lookup off\n"
             f"/stats\nHello there\n/stats\n/set ctx 8\n/regen\n/save {conv}\n/clear\n/show\n/load {conv}\n/show\n"
             f'"""\nline one\nline two\n"""\n/load {tmp_path / "missing.json"}\n/bye\n')
    r = llmlite("chat", tiny_path, "-n", "4", input=turns)
    assert r.returncode == 0, r.stderr
    err = r.stderr
    assert "(temp = 0.0)" in err and "(top_k = 5)" in err and "(lookup off)" in err
    assert "error: --top-k must be >= 0" in err and "error: /set bogus" in err and "(ctx = 4096)" in err
    assert "(no reply yet)" in err
    stats = _stats_ok(err)
    assert len(stats) == 4                     # the turn, /stats, /regen's turn, the multi-line turn
    replies = r.stdout.splitlines()
    assert replies[0] == replies[1]            # /regen at temperature 0: the same reply again
    import json

    saved = json.loads(conv.read_text())
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant"]
    assert saved["messages"][0]["content"] == "Hello there" and saved["messages"][1]["content"] == replies[1]
    assert "error: /set ctx 8: the conversation is" in err     # it would not fit: refused
    assert "context: 0 of 4096 tokens" in err and "(conversation loaded from" in err and "2 messages" in err
    assert "token ids: []" in err and "Hello there" in err.split("(conversation loaded from")[1]
    assert "error: /load" in err and "missing.json" in err



def test_chat_save_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    """/save over a saved conversation when the disk fills midway (every write past
    the first 4,096 bytes fails with ENOSPC): one error naming the user's path, the old
    file intact, no temporary left; a new file is not created at all."""
    import builtins
    import errno
    from types import SimpleNamespace

    from llmlite.cli.repl import _save
    from llmlite.errors import UserError

    real_open = builtins.open

    class FullDisk:
        def __init__(self, f):
            self.f, self.room = f, 4096

        def write(self, s):
            if len(s) > self.room:
                self.f.write(s[:self.room])
                self.room = 0
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.room -= len(s)
            return self.f.write(s)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def full_disk_open(file, mode="r", *a, **kw):
        f = real_open(file, mode, *a, **kw)
        return FullDisk(f) if "w" in mode else f

    keep = tmp_path / "keep.json"
    keep.write_text('{"format": "llmlite-chat-1", "messages": []}')
    chat = SimpleNamespace(system=None, raw=False, transcript=None,
                           messages=[{"role": "user", "content": "x" * 10_000}])
    monkeypatch.setattr(builtins, "open", full_disk_open)
    for path in (keep, tmp_path / "new.json"):
        with pytest.raises(UserError) as e:
            _save(chat, str(path))
        assert str(e.value) == f"/save {path}: {os.strerror(errno.ENOSPC)}"
    monkeypatch.undo()
    assert keep.read_text() == '{"format": "llmlite-chat-1", "messages": []}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.json"]
    keep.chmod(0o600)                          # with room: replaced whole, and as private as it was
    _save(chat, str(keep))
    assert json.loads(keep.read_text())["messages"] == chat.messages
    assert keep.stat().st_mode & 0o777 == 0o600 and sorted(p.name for p in tmp_path.iterdir()) == ["keep.json"]


def test_piped_chat_drops_old_turns_without_asking(smollm2_path):
    """Piped input has no one to answer the [y/N] question (it read the user's next
    message as the answer): when a turn does not fit with the conversation, the oldest
    exchanges go (never the system message), stderr says so in one line, and every
    input line is answered as a message. (On a terminal it asks: test_repl_pty.py.)"""
    lines = [f"Line {i}: tell me more and more and more about the number {i}." for i in range(6)]
    r = llmlite("chat", "smollm2-135m", "-c", "160", "-n", "4", "--temp", "0", "--system", "Be terse.",
                input="".join(ln + "\n" for ln in lines) + "/show\n", timeout=120)
    assert r.returncode == 0, r.stderr
    err = r.stderr
    assert "[y/N]" not in err
    dropped = [ln for ln in err.splitlines() if "to fit)" in ln]
    assert dropped and all(ln.startswith("(the conversation with this message is ") and "dropped the oldest" in ln
                           for ln in dropped), err
    assert len(_stats_ok(err)) == len(lines)                 # every line was a message with a reply
    assert len(r.stdout.splitlines()) == len(lines), r.stdout
    shown = err.split("template:")[-1]
    assert "Be terse." in shown and lines[-1] in shown and lines[0] not in shown


def test_run_says_when_the_context_ends_the_reply(tiny_path):
    """-n past the room the context leaves: the reply stops there, and the stats say the
    context ended it (not "length"), with what to change"""
    full = llmlite("run", tiny_path, "--raw", "-p", "Hello world", "-c", "24", "-n", "1000", "--temp", "0")
    assert full.returncode == 0, full.stderr
    assert "stop: context" in full.stderr and "context of 24 tokens is full" in full.stderr and "-c" in full.stderr
    short = llmlite("run", tiny_path, "--raw", "-p", "Hello world", "-c", "24", "-n", "3", "--temp", "0")
    assert "stop: length" in short.stderr and "is full" not in short.stderr


def test_threads_past_the_cpus_and_a_bad_isa_get_a_note(tiny_path):
    """-t past the CPU count is capped with a note (more threads only wait on each other);
    LLMLITE_ISA naming no kernel set this CPU runs is said, not silently ignored"""
    cpus = os.cpu_count() or 1
    r = llmlite("run", tiny_path, "--raw", "-p", "Hi", "-n", "2", "-t", str(cpus + 50))
    assert r.returncode == 0 and f"using {cpus}" in r.stderr, r.stderr
    r = llmlite("run", tiny_path, "--raw", "-p", "Hi", "-n", "2", env={"LLMLITE_ISA": "garbage"})
    assert r.returncode == 0 and "LLMLITE_ISA=garbage" in r.stderr, r.stderr
    r = llmlite("run", tiny_path, "--raw", "-p", "Hi", "-n", "2", env={"LLMLITE_ISA": "scalar"})
    assert r.returncode == 0 and "LLMLITE_ISA" not in r.stderr and "CPUs" not in r.stderr, r.stderr
