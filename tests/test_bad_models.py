"""Bad models and bad input, through the CLI (`run -p`, the REPL) and the Python API:
an unsupported architecture or tensor type, missing tensors, a chat template that
raises or tries to escape the sandbox, a prompt longer than the context. Each gives
one clear line ("error: ..." on stderr), a non-zero exit and no traceback; in the
REPL a message, and the REPL goes on."""
import pytest

from helpers import llmlite as cli, rewrite_gguf

I8 = 24              # a GGML type llmlite does not compute with (block 1, like the F16 tensor it retypes)


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


@pytest.fixture(scope="module")
def bad(tiny_path, tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    return {
        "copy": rewrite_gguf(tiny_path, d / "copy.gguf"),
        "arch": rewrite_gguf(tiny_path, d / "mamba.gguf", arch="mamba"),
        "type": rewrite_gguf(tiny_path, d / "i8.gguf", retype={"blk.0.attn_q.weight": I8}),
        "no_ffn_down": rewrite_gguf(tiny_path, d / "no-ffn-down.gguf", drop_tensors={"blk.0.ffn_down.weight"}),
        "no_output_norm": rewrite_gguf(tiny_path, d / "no-output-norm.gguf", drop_tensors={"output_norm.weight"}),
        "no_embd": rewrite_gguf(tiny_path, d / "no-embd.gguf", drop_tensors={"token_embd.weight"}),
    }


def test_the_editor_itself_keeps_a_working_model(bad):
    import llmlite

    r = cli("run", bad["copy"], "--raw", "-p", "Hello", "-n", "3", "--temp", "0")
    assert r.returncode == 0, r.stderr
    m = llmlite.load(bad["copy"], n_ctx=64)
    assert r.stdout == "".join(m.generate("Hello", max_tokens=3, temperature=0)) + "\n"


CASES = {
    "arch": ("mamba.gguf", "unsupported architecture 'mamba'", "llama"),
    "type": ("i8.gguf", "unsupported tensor type I8", "blk.0.attn_q.weight"),
    "no_ffn_down": ("no-ffn-down.gguf", "missing tensor blk.0.ffn_down", "incomplete"),
    "no_output_norm": ("no-output-norm.gguf", "missing tensor output_norm", "incomplete"),
    "no_embd": ("no-embd.gguf", "missing tensor token_embd", "incomplete"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_model_cli(bad, case):
    r = cli("run", bad[case], "-p", "Hello", "-n", "2")
    one_error_line(r, *CASES[case])
    assert r.returncode == 2, r.stderr             # the file's fault, not an internal error
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

def test_template_that_raises(tiny_path, tmp_path):
    t = rewrite_gguf(tiny_path, tmp_path / "raises.gguf",
                  kv={"tokenizer.chat_template": "{{ raise_exception('This model only takes user turns') }}"})
    one_error_line(cli("run", t, "-p", "Hello", "-n", "2"), "chat template", "This model only takes user turns")
    import llmlite as api
    from llmlite.chat import Chat, ChatTemplateError

    m = api.load(t, n_ctx=64)
    chat = Chat(m)
    with pytest.raises(ChatTemplateError, match="refused the conversation: This model only takes user turns"):
        list(chat.reply("Hello", max_tokens=2))
    assert chat.messages == []


def test_template_that_raises_later_keeps_the_repl_going(tiny_path, tmp_path):
    src = ("{% if messages | length > 2 %}{{ raise_exception('one question only') }}{% endif %}"
           "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
           "<|im_start|>assistant\n")
    t = rewrite_gguf(tiny_path, tmp_path / "later.gguf", kv={"tokenizer.chat_template": src})
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
def test_sandbox_escape_is_refused(tiny_path, tmp_path, template):
    mark = tmp_path / "pwned"
    t = rewrite_gguf(tiny_path, tmp_path / "escape.gguf",
                  kv={"tokenizer.chat_template": template.replace("{mark}", str(mark))})
    line = one_error_line(cli("run", t, "-p", "Hello", "-n", "2"), "chat template")
    assert "unsafe" in line or "sandbox" in line, line
    assert not mark.exists()
    import llmlite as api
    from llmlite.chat import Chat, ChatTemplateError

    with pytest.raises(ChatTemplateError):
        list(Chat(api.load(t, n_ctx=64)).reply("Hello", max_tokens=2))
    assert not mark.exists()


# ---- a prompt over the context ------------------------------------------------------------

def test_prompt_over_the_context(tiny_path):
    import llmlite as api
    from llmlite.errors import LlmliteError
    from llmlite.chat import Chat

    text = "word " * 100
    m = api.load(tiny_path, n_ctx=64)
    chat = Chat(m)
    chat.messages.append({"role": "user", "content": text})
    n_chat = len(chat.prompt_ids())
    n_raw = len(m.tokenize(text))
    assert n_chat > 64 and n_raw > 64
    line = one_error_line(cli("run", tiny_path, "-c", "64", "-n", "16", "-p", text),
                          f"the prompt is {n_chat} tokens", "context of 64", f"use -c {n_chat + 16} or more")
    assert line.startswith("error: the prompt is")
    one_error_line(cli("run", tiny_path, "-c", "64", "--raw", "-p", text),
                   f"the prompt is {n_raw} tokens", f"use -c {n_raw + 512} or more")    # -n's default, 512
    # a prompt that fits exactly up to the last position still runs
    ok = cli("run", tiny_path, "-c", str(n_raw + 1), "--raw", "-p", text, "-n", "4", "--temp", "0")
    assert ok.returncode == 0, ok.stderr
    assert "stop: context" in ok.stderr or "stop: length" in ok.stderr
    # the API: a clear exception, never a silent truncation
    with pytest.raises(LlmliteError, match=r"context"):
        list(m.generate(text, max_tokens=4))
