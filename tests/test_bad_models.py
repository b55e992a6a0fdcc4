"""Bad models and bad input, through the CLI (`run -p`, the REPL) and the Python API:
an unsupported architecture or tensor type, missing tensors, a chat template that
raises or tries to escape the sandbox, a prompt longer than the context. Each gives
one clear line ("error: ..." on stderr), a non-zero exit and no traceback; in the
REPL a message, and the REPL goes on."""
import functools
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IQ4_NL = 20          # a GGML type llmlite does not compute with (block 32, like the tiny model's rows)


def cli(*args, input=None, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "llmlite", *map(str, args)], input=input, capture_output=True,
                          text=True, encoding="utf-8", timeout=timeout, cwd=ROOT, env=env)


def one_error_line(r, *words):
    """The run failed with exactly one 'error: ...' line holding every word; returns it."""
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def _gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


@functools.lru_cache(maxsize=None)
def _parsed(src):
    """(architecture, [(key, raw value bytes)], [(tensor name, raw info parts)], alignment, data offset)."""
    from gguf import GGUFReader

    r = GGUFReader(src)
    kvs = [(k, b"".join(p.tobytes() for p in f.parts[2:])) for k, f in r.fields.items() if not k.startswith("GGUF.")]
    infos = [(t.name, [p.tobytes() for p in t.field.parts]) for t in r.tensors]
    return r.fields["general.architecture"].contents(), kvs, infos, int(r.alignment), int(r.data_offset)


def edit_gguf(src, dst, arch=None, set_str=None, drop_tensors=(), retype=None):
    """A byte-level copy of a GGUF with edits: a new architecture name (its arch.* keys
    renamed with it), string metadata set, tensors dropped (their data stays, unused),
    tensor types changed (the data is left as it is: only loading is exercised)."""
    old_arch, fields, tensors, alignment, data_offset = _parsed(str(src))
    set_str = dict(set_str or {})
    if arch is not None:
        set_str["general.architecture"] = arch
    kvs = []
    for k, value in fields:
        if k in set_str:
            continue
        name = f"{arch}.{k[len(old_arch) + 1:]}" if arch and k.startswith(old_arch + ".") else k
        kvs.append(_gstr(name) + value)
    kvs += [_gstr(k) + struct.pack("<I", 8) + _gstr(v) for k, v in set_str.items()]
    infos = []
    for name, parts in tensors:
        if name in drop_tensors:
            continue
        if retype and name in retype:
            parts = parts[:-2] + [struct.pack("<I", retype[name]), parts[-1]]
        infos.append(b"".join(parts))
    head = b"GGUF" + struct.pack("<IQQ", 3, len(infos), len(kvs)) + b"".join(kvs) + b"".join(infos)
    head += b"\0" * (-len(head) % alignment)
    with open(src, "rb") as f_in, open(dst, "wb") as f:
        f.write(head)
        f_in.seek(data_offset)
        f.write(f_in.read())
    return dst


@pytest.fixture(scope="module")
def tiny(shared_dir):
    p = Path(shared_dir) / "refs" / "synthetic" / "llama-mqa-tiny-f16.gguf"
    if not p.exists():
        pytest.skip(f"{p} not present")
    return p


@pytest.fixture(scope="module")
def bad(tiny, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    return {
        "copy": edit_gguf(tiny, d / "copy.gguf"),
        "arch": edit_gguf(tiny, d / "mamba.gguf", arch="mamba"),
        "type": edit_gguf(tiny, d / "iq4nl.gguf", retype={"blk.0.attn_q.weight": IQ4_NL}),
        "no_ffn_down": edit_gguf(tiny, d / "no-ffn-down.gguf", drop_tensors={"blk.0.ffn_down.weight"}),
        "no_output_norm": edit_gguf(tiny, d / "no-output-norm.gguf", drop_tensors={"output_norm.weight"}),
        "no_embd": edit_gguf(tiny, d / "no-embd.gguf", drop_tensors={"token_embd.weight"}),
    }


def test_the_editor_itself_keeps_a_working_model(bad):
    import llmlite

    r = cli("run", bad["copy"], "--raw", "-p", "Hello", "-n", "3", "--temp", "0")
    assert r.returncode == 0, r.stderr
    m = llmlite.load(bad["copy"], n_ctx=64)
    assert r.stdout == "".join(m.generate("Hello", max_tokens=3, temperature=0)) + "\n"


CASES = {
    "arch": ("mamba.gguf", "unsupported architecture 'mamba'", "llama"),
    "type": ("iq4nl.gguf", "unsupported tensor type IQ4_NL", "blk.0.attn_q.weight"),
    "no_ffn_down": ("no-ffn-down.gguf", "missing tensor blk.0.ffn_down", "incomplete"),
    "no_output_norm": ("no-output-norm.gguf", "missing tensor output_norm", "incomplete"),
    "no_embd": ("no-embd.gguf", "missing tensor token_embd", "incomplete"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_model_cli(bad, case):
    r = cli("run", bad[case], "-p", "Hello", "-n", "2")
    one_error_line(r, *CASES[case])
    if case == "arch":         # the REPL refuses it the same way before it starts
        one_error_line(cli("chat", bad[case], input="Hello\n"), *CASES[case])


@pytest.mark.parametrize("case", list(CASES))
def test_bad_model_api(bad, case):
    import llmlite
    from llmlite.errors import LlmliteError
    from llmlite.gguf import GGUFError

    with pytest.raises((LlmliteError, GGUFError)) as ei:
        llmlite.load(bad[case], n_ctx=64)
    msg = str(ei.value)
    assert "\n" not in msg
    for w in CASES[case]:
        assert w in msg


# ---- chat templates ---------------------------------------------------------------------

def test_template_that_raises(tiny, tmp_path):
    t = edit_gguf(tiny, tmp_path / "raises.gguf",
                  set_str={"tokenizer.chat_template": "{{ raise_exception('This model only takes user turns') }}"})
    one_error_line(cli("run", t, "-p", "Hello", "-n", "2"), "chat template", "This model only takes user turns")
    import llmlite as api
    from llmlite.chat import Chat, ChatTemplateError

    m = api.load(t, n_ctx=64)
    chat = Chat(m)
    with pytest.raises(ChatTemplateError, match="refused the conversation: This model only takes user turns"):
        list(chat.reply("Hello", max_tokens=2))
    assert chat.messages == []


def test_template_that_raises_later_keeps_the_repl_going(tiny, tmp_path):
    src = ("{% if messages | length > 2 %}{{ raise_exception('one question only') }}{% endif %}"
           "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
           "<|im_start|>assistant\n")
    t = edit_gguf(tiny, tmp_path / "later.gguf", set_str={"tokenizer.chat_template": src})
    r = cli("chat", t, "-n", "2", "--temp", "0", input="Hello\nAgain\n/help\n/bye\n")
    assert r.returncode == 0, r.stderr
    assert "error: the model's chat template refused the conversation: one question only" in r.stderr
    assert "/clear" in r.stderr                         # /help still answered after the error
    assert r.stderr.count("stop: ") == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("template", [
    "{{ cycler.__init__.__globals__.os.popen('touch {mark}').read() }}",
    "{{ lipsum.__globals__['os'].system('touch {mark}') }}",
    "{{ joiner.__init__.__globals__['__builtins__']['open']('{mark}', 'w').write('x') }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('touch {mark}') }}",
])
def test_sandbox_escape_is_refused(tiny, tmp_path, template):
    mark = tmp_path / "pwned"
    t = edit_gguf(tiny, tmp_path / "escape.gguf",
                  set_str={"tokenizer.chat_template": template.replace("{mark}", str(mark))})
    line = one_error_line(cli("run", t, "-p", "Hello", "-n", "2"), "chat template")
    assert "unsafe" in line or "sandbox" in line, line
    assert not mark.exists()
    import llmlite as api
    from llmlite.chat import Chat, ChatTemplateError

    with pytest.raises(ChatTemplateError):
        list(Chat(api.load(t, n_ctx=64)).reply("Hello", max_tokens=2))
    assert not mark.exists()


# ---- a prompt over the context ------------------------------------------------------------

def test_prompt_over_the_context(tiny):
    import llmlite as api
    from llmlite.errors import LlmliteError
    from llmlite.chat import Chat

    text = "word " * 100
    m = api.load(tiny, n_ctx=64)
    chat = Chat(m)
    chat.messages.append({"role": "user", "content": text})
    n_chat = len(chat.prompt_ids())
    n_raw = len(m.tokenize(text))
    assert n_chat > 64 and n_raw > 64
    line = one_error_line(cli("run", tiny, "-c", "64", "-n", "16", "-p", text),
                          f"the prompt is {n_chat} tokens", "context of 64", f"use -c {n_chat + 16} or more")
    assert line.startswith("error: the prompt is")
    one_error_line(cli("run", tiny, "-c", "64", "--raw", "-p", text),
                   f"the prompt is {n_raw} tokens", f"use -c {n_raw + 512} or more")    # -n's default, 512
    # a prompt that fits exactly up to the last position still runs
    ok = cli("run", tiny, "-c", str(n_raw + 1), "--raw", "-p", text, "-n", "4", "--temp", "0")
    assert ok.returncode == 0, ok.stderr
    assert "stop: context" in ok.stderr or "stop: length" in ok.stderr
    # the API: a clear exception, never a silent truncation
    with pytest.raises(LlmliteError, match=r"context"):
        list(m.generate(text, max_tokens=4))
