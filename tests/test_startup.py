"""The time-to-first-token shortcuts give what the general paths give: the `run`
fast parser (what Typer parses), the Python twins of known chat templates (what
Jinja renders), the ASCII-only pre-tokenizer patterns (what the full ones split)."""
import random

import pytest


# ---- the `run` fast parser ----------------------------------------------------------

def _typer_params(argv):
    """What Typer hands to run() for `llmlite ARGV` (None where it refuses the line)."""
    import typer

    from llmlite.cli import app

    group = typer.main.get_command(app)
    try:
        ctx = group.make_context("llmlite", list(argv))
        args = list(getattr(ctx, "protected_args", None) or getattr(ctx, "_protected_args", [])) + list(ctx.args)
        name, cmd, rest = group.resolve_command(ctx, args)
        sub = cmd.make_context(name, rest, parent=ctx)
    except (typer.Exit, SystemExit, Exception):
        return None
    return ctx.params.get("verbose", False), dict(sub.params)


@pytest.mark.parametrize("argv", [
    ["run", "m.gguf", "-p", "Hi", "-n", "1", "-t", "2"],
    ["run", "-p", "Hi"],
    ["-v", "run", "--prompt=x y", "m", "--temp", "0.5", "-ngl", "all", "--no-lookup", "--raw"],
    ["--verbose", "run", "m", "-f", "-", "-c", "0", "--top-k", "0", "--top-p", "1", "--min-p", ".05",
     "--repeat-penalty", "1.1", "-s", "-1", "-sys", "be brief", "--draft", "3", "--lookup"],
    ["run", "m", "-p", "--help", "-n", "-1", "--seed", "42", "--n-predict", "7", "--predict", "9"],
    ["run", "m", "-p", "-", "--system-prompt", "", "--gpu-layers", "0", "--temp=1e-3", "--draft-max=2"],
])
def test_fast_parse_matches_typer(argv):
    from llmlite.cli import fastpath, run

    got = fastpath.parse(argv)
    assert got is not None, argv
    fn, kwargs, verbose = got
    assert fn is run.run
    want = _typer_params(argv)
    assert want is not None, argv
    assert (verbose, kwargs) == want
    for k, v in kwargs.items():
        assert type(v) is type(want[1][k]), k


@pytest.mark.parametrize("argv", [
    ["run", "m", "-h"], ["run", "--help"], ["run", "m", "-pHi"], ["run", "m", "-n", "1.5"], ["run", "m", "-n"],
    ["run", "a", "b"], ["run", "m", "--temp", "inf"], ["run", "m", "--", "-p"], ["run", "m", "--raw=1"],
    ["info", "m"], ["chat", "m"], [], ["-v"], ["run", "m", "--bogus"], ["run", "m", "-sys=x"],
])
def test_fast_parse_leaves_the_rest_to_typer(argv):
    from llmlite.cli import fastpath

    assert fastpath.parse(argv) is None


# ---- chat templates: Python twins vs Jinja ------------------------------------------

def _conversations(seed, n):
    rng = random.Random(seed)
    roles = ["system", "user", "assistant", "tool", "System", ""]
    texts = ["", "Hi", "a\nb", "{{ x }}", "{% if %}", "<|im_end|>", " é 😀 ", "\n"]
    for _ in range(n):
        yield [{"role": rng.choice(roles), "content": rng.choice(texts) * rng.randint(0, 2)}
               for _ in range(rng.randint(0, 5))], rng.random() < 0.7


@pytest.mark.parametrize("which", ["chatml", "smollm2"])
def test_native_templates_render_as_jinja(which):
    from llmlite import chat

    src = {"chatml": chat._CHATML, "smollm2": chat._SMOLLM2}[which]
    t = chat.ChatTemplate(src, "<s>", "</s>")
    assert t._native is not None and t._tmpl is None      # no Jinja compiled for a known template
    ref = __import__('llmlite.template_sandbox').template_sandbox.environment().from_string(src)
    for msgs, gen in _conversations(1, 300):
        want = ref.render(messages=msgs, add_generation_prompt=gen, bos_token="<s>", eos_token="</s>")
        assert t.render(msgs, add_generation_prompt=gen) == want, (msgs, gen)


def test_native_template_defers_odd_input_to_jinja():
    from llmlite import chat

    t = chat.ChatTemplate(chat._CHATML)
    with pytest.raises(chat.ChatTemplateError):
        t.render([{"role": "user", "content": 3}])          # str + int: Jinja's error, as before
    with pytest.raises(chat.ChatTemplateError):
        t.render([{"role": "user"}])                        # no content


def test_smollm2_file_template_is_the_known_one(smollm2_path):
    from llmlite import chat
    from llmlite.gguf import open_gguf

    with open_gguf(smollm2_path) as g:
        assert g.metadata["tokenizer.chat_template"] == chat._SMOLLM2


# ---- pre-tokenizer: ASCII-only patterns ---------------------------------------------

def test_ascii_patterns_split_ascii_text_as_the_full_ones():
    from llmlite.tokenizer import pretokenizer as T

    sources = {rx for regexes, _ in T.PRE_TOKENIZERS.values() for rx in regexes} | set(T._FAST.values())
    rng = random.Random(0)
    pieces = [chr(i) for i in range(128)] + ["hello", " World", "'s", "'LL", "123", "4567", "  ", "\n\n",
                                               " \t", "foo_bar", "IMGIMGAZ", "<sentinel:12>"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) for _ in range(400)]
    for rx in sources:
        full, fast = T._compile(rx)[0], T._compile(rx, ascii_only=True)[0]
        for s in texts:
            assert [m.span() for m in fast.finditer(s)] == [m.span() for m in full.finditer(s)], (rx, s)


def test_fast_split_picks_the_pattern_by_text():
    from llmlite.tokenizer import pretokenizer as T

    src = T._FAST[(T._GPT2,)]
    split = T._FastSplit(src)
    full = T._compile(src)[0]
    for s in ["Hello, world! It's 2024.", "naïve café 😀 ＡＢＣ", "", " \n\t x"]:
        assert split.findall(s) == full.findall(s)
    assert split._ascii is not None and split._full is not None
