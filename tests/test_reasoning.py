"""Reasoning formats (llmlite/reasoning.py): Qwen3's <think> block and gpt-oss's harmony
channels split from the answer while streaming, kept apart in the history, and shown
by `run` and the REPL (the answer on stdout, the reasoning dim on stderr or hidden).

The two chat templates in tests/data/templates are the models' own, as llama.cpp's
models/templates folder keeps them: qwen3-0.6b.jinja is Qwen/Qwen3-0.6B's
tokenizer_config.json chat_template, gpt-oss-120b.jinja openai/gpt-oss-120b's."""
import itertools
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmlite import reasoning as rsn
from llmlite.chat import Chat, ChatTemplate

R, A = rsn.REASONING, rsn.ANSWER
TEMPLATES = Path(__file__).parent / "data" / "templates"
QWEN3 = (TEMPLATES / "qwen3-0.6b.jinja").read_text()
GPT_OSS = (TEMPLATES / "gpt-oss-120b.jinja").read_text()

QWEN3_REPLY = "<think>\nThe user adds 2 and 2.\n</think>\n\nIt is **4**."
# as the decoder prints gpt-oss's reply: <|end|> is a control token (not printed), the
# header tokens are printed (llama.cpp marks them so), <|return|> ends generation
HARMONY_REPLY = ("<|channel|>analysis<|message|>Simple sum: 2+2=4.<|start|>assistant<|channel|>final"
                 "<|message|>It is **4**.")


def _merged(parts):
    """consecutive parts of a kind joined: the split independent of where pieces were cut"""
    out = []
    for kind, group in itertools.groupby(parts, key=lambda p: p[0]):
        out.append((kind, "".join(t for _, t in group)))
    return out


def _cuts(text):
    """the text as two pieces cut at every position, three pieces cut at every pair of
    positions (so each marker is split in every way), and one piece per character"""
    n = len(text)
    yield [text]
    for i in range(1, n):
        yield [text[:i], text[i:]]
    for i in range(1, n, 3):
        for j in range(i + 1, n, 2):
            yield [text[:i], text[i:j], text[j:]]
    yield list(text)


CASES = [
    ("think", "", QWEN3_REPLY, [(R, "The user adds 2 and 2.\n"), (A, "It is **4**.")]),
    # the template opened the block in the generation prompt: the reply starts inside it
    ("think", "<|im_start|>assistant\n<think>\n", "Sum.\n</think>\n\n4", [(R, "Sum.\n"), (A, "4")]),
    # no block at the start: all answer, a later <think> included
    ("think", "", "Plain <think> answer </think>.", [(A, "Plain <think> answer </think>.")]),
    ("think", "", "<thin", [(A, "<thin")]),
    # an empty block (the model chose not to think): answer only
    ("think", "", "<think>\n\n</think>\n\nHi", [(A, "Hi")]),
    # Qwen3's enable_thinking=false closes the block in the prompt: the reply is answer
    ("think", "<|im_start|>assistant\n<think>\n\n</think>\n\n", "Hi </think>", [(A, "Hi </think>")]),
    ("think", "", "<think>cut off <", [(R, "cut off <")]),
    ("harmony", "", HARMONY_REPLY, [(R, "Simple sum: 2+2=4."), (A, "It is **4**.")]),
    # the same with the control tokens printed (a decoder with special tokens on)
    ("harmony", "", "<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>final<|message|>y<|return|>",
     [(R, "x"), (A, "y")]),
    ("harmony", "", "<|channel|>final <|constrain|>json<|message|>{}", [(A, "{}")]),
    ("harmony", "", "No channels here, <| not a marker.", [(A, "No channels here, <| not a marker.")]),
    # cut inside the next message's header: its header text is not shown
    ("harmony", "", "<|channel|>analysis<|message|>abc<|start|>assist", [(R, "abc")]),
    (None, "", QWEN3_REPLY, [(A, QWEN3_REPLY)]),
]


@pytest.mark.parametrize("fmt,prompt,reply,want", CASES)
def test_split_is_the_same_wherever_the_stream_is_cut(fmt, prompt, reply, want):
    for pieces in _cuts(reply):
        got = _merged(rsn.split(pieces, rsn.splitter_for(fmt, prompt)))
        assert got == want, pieces


@pytest.mark.parametrize("fmt,header,text,markers", [
    ("think", "<think>", "a < b </th c </thinking>", ["</think>"]),
    ("harmony", "<|channel|>analysis<|message|>", "x <| y <|sta z <|en <|ret", ["<|end|>", "<|return|>",
                                                                                 "<|call|>", "<|start|>",
                                                                                 "<|channel|>"]),
])
def test_only_a_possible_marker_is_held_back(fmt, header, text, markers):
    """fed one character at a time, the reasoning comes out at once but for the end that
    could still begin a marker"""
    sp = rsn.splitter_for(fmt)
    assert sp.feed(header) == []
    given = ""
    for i, ch in enumerate(text):
        given += "".join(t for _, t in sp.feed(ch))
        assert text.startswith(given)
        held = text[len(given):i + 1]
        assert any(m.startswith(held) for m in markers), (i, held)
    assert given + "".join(t for _, t in sp.flush()) == text


def test_long_reasoning_streams_piece_by_piece():
    """each piece of a long reasoning comes out as it is fed: the splitter does not wait
    for the block to close"""
    sp = rsn.splitter_for("think")
    assert sp.feed("<think>") == []
    for k in range(2000):
        assert sp.feed(f"step {k}. ") == [(R, f"step {k}. ")]


# ---- choosing the format ---------------------------------------------------------------------

def _tokenizer(*specials):
    ids = {t: 1000 + i for i, t in enumerate(specials)}
    return types.SimpleNamespace(token_to_id=ids.get, bos_id=None, eos_id=None, add_bos=False,
                                 text=lambda i: b"", chat_template=None,
                                 opens_with_special=lambda text: False)   # every prompt tokenized whole


def test_format_from_vocabulary_and_template():
    harmony = _tokenizer("<|start|>", "<|channel|>", "<|message|>", "<|end|>")
    assert rsn.reasoning_format(harmony, GPT_OSS) == "harmony"
    assert rsn.reasoning_format(_tokenizer("<think>", "</think>", "<|im_start|>"), QWEN3) == "think"
    assert rsn.reasoning_format(_tokenizer("<|im_start|>", "<|im_end|>"), QWEN3) is None
    assert rsn.reasoning_format(_tokenizer("<think>"), QWEN3) is None


# ---- the history and the next prompt ---------------------------------------------------------

class _Model:
    """A stand-in model: a vocabulary of special tokens, a chat template, and a fixed
    reply per turn (generation is replaced by the pieces given)."""

    def __init__(self, template, specials, replies):
        self.tokenizer = _tokenizer(*specials)
        self.tokenizer.chat_template = template
        self.metadata = {}
        self.path = Path("reasoner.gguf")
        self.n_ctx = 1 << 20
        self.n_past = 0
        self.replies = list(replies)
        self.prompts = []

    def tokenize(self, text, add_special=False, parse_special=True):
        self.prompts.append(text)
        return list(range(len(text.split()) + 1))

    def reset(self):
        pass


@pytest.fixture
def fake_generation(monkeypatch):
    """generation replaced: the model's next reply, cut into 3-character pieces"""
    def generate_text(model, ids, config, stats=None, ids_out=None):
        reply = model.replies.pop(0)
        if stats is not None:
            stats.prompt_tokens, stats.generated, stats.stop_reason = len(ids), len(reply) // 3, "eos"
        for i in range(0, len(reply), 3):
            yield reply[i:i + 3]

    monkeypatch.setattr("llmlite.chat.generate_text", generate_text)


QWEN3_VOCAB = ("<|im_start|>", "<|im_end|>", "<think>", "</think>")
HARMONY_VOCAB = ("<|start|>", "<|end|>", "<|channel|>", "<|message|>", "<|return|>")


def test_qwen3_history_keeps_reasoning_out_of_later_prompts(fake_generation):
    model = _Model(QWEN3, QWEN3_VOCAB, [QWEN3_REPLY, "<think>\nAgain.\n</think>\n\nSix."])
    chat = Chat(model)
    assert chat.reasoning == "think"
    assert "".join(chat.reply("What is 2+2?")) == "It is **4**."
    assert chat.messages[-1] == {"role": "assistant", "content": "It is **4**.",
                                 "reasoning_content": "The user adds 2 and 2."}
    list(chat.reply("And 3+3?"))
    second = model.prompts[-1]                 # the prompt the second turn was generated from
    assert "<|im_start|>assistant\nIt is **4**.<|im_end|>" in second
    assert "The user adds 2 and 2" not in second and "<think>" not in second
    # the template shows the latest turn's reasoning (after the last user message) in full
    tail = chat.render(add_generation_prompt=False)
    assert tail.endswith("<|im_start|>assistant\n<think>\nAgain.\n</think>\n\nSix.<|im_end|>\n")


def test_gpt_oss_history_keeps_reasoning_out_of_later_prompts(fake_generation):
    model = _Model(GPT_OSS, HARMONY_VOCAB, [HARMONY_REPLY, "<|channel|>analysis<|message|>6.<|start|>"
                                            "assistant<|channel|>final<|message|>Six."])
    chat = Chat(model)
    assert chat.reasoning == "harmony"
    parts = list(chat.reply_parts("What is 2+2?"))
    assert _merged(parts) == [(R, "Simple sum: 2+2=4."), (A, "It is **4**.")]
    assert chat.messages[-1] == {"role": "assistant", "content": "It is **4**.", "thinking": "Simple sum: 2+2=4."}
    list(chat.reply("And 3+3?"))
    second = model.prompts[-1]
    assert "<|start|>assistant<|channel|>final<|message|>It is **4**.<|end|>" in second
    assert "Simple sum" not in second and "<|channel|>analysis" not in second
    assert second.endswith("<|start|>user<|message|>And 3+3?<|end|><|start|>assistant")
    # the last turn, rendered without a generation prompt: its analysis is there
    assert "<|channel|>analysis<|message|>6.<|end|>" in chat.render(add_generation_prompt=False)


def test_interrupted_reasoning_joins_the_history(fake_generation):
    model = _Model(QWEN3, QWEN3_VOCAB, ["<think>\nStill thinking about it"])
    chat = Chat(model)
    parts = chat.reply_parts("Hi")
    given = ""
    while "thinking" not in given:            # interrupted in the middle of the reasoning
        kind, text = next(parts)
        assert kind == R
        given += text
    parts.close()
    assert given != "Still thinking about it"
    assert chat.messages[-1] == {"role": "assistant", "content": "", "reasoning_content": given}


# ---- the commands -------------------------------------------------------------------------------

@pytest.fixture
def cli(monkeypatch, fake_generation):
    """run the CLI in-process on a stand-in model that gives `replies` in turn"""
    def invoke(template, vocab, replies, *args, input=None):
        model = _Model(template, vocab, replies)
        monkeypatch.setattr("llmlite.cli.run.load_model", lambda *a: model)
        monkeypatch.setattr("llmlite.cli.repl.load_model", lambda *a: model)
        for mod in ("llmlite.cli.run", "llmlite.cli.repl"):
            monkeypatch.setattr(f"{mod}.apply_model_defaults", lambda *a: None)
        from llmlite.cli.app import app

        return CliRunner().invoke(app, list(args), input=input)

    return invoke


@pytest.mark.parametrize("template,vocab,reply,thought", [(QWEN3, QWEN3_VOCAB, QWEN3_REPLY, "The user adds"),
                                                          (GPT_OSS, HARMONY_VOCAB, HARMONY_REPLY, "Simple sum")])
def test_run_prints_the_answer_to_stdout_and_the_reasoning_to_stderr(cli, template, vocab, reply, thought):
    r = cli(template, vocab, [reply], "run", "m.gguf", "-p", "What is 2+2?", "--plain")
    assert r.exit_code == 0, r.output
    assert r.stdout == "It is **4**.\n"
    assert thought in r.stderr and "<|" not in r.stderr and "think>" not in r.stderr
    r = cli(template, vocab, [reply], "run", "m.gguf", "-p", "What is 2+2?", "--hide-reasoning")
    assert r.exit_code == 0, r.output
    assert r.stdout == "It is **4**.\n" and thought not in r.stderr


def test_repl_set_reasoning_hides_and_shows(cli):
    replies = [QWEN3_REPLY, "<think>Second thought.</think>Six.", "<think>Third thought.</think>Ten."]
    lines = ("What is 2+2?\n/set reasoning hide\n/show\nAnd 3+3?\n/set reasoning show\nAnd 5+5?\n"
             "/set reasoning maybe\n")
    r = cli(QWEN3, QWEN3_VOCAB, replies, "chat", "m.gguf", "--plain", input=lines)
    assert r.exit_code == 0, r.output
    assert r.stdout == "It is **4**.\nSix.\nTen.\n"
    assert "The user adds" in r.stderr and "Second thought" not in r.stderr and "Third thought" in r.stderr
    assert "(reasoning hidden; think format)" in r.stderr
    assert "reasoning: think format, hidden" in r.stderr       # /show
    assert "error: /set reasoning maybe: show or hide" in r.stderr


def test_reasoning_is_dim_on_a_terminal(monkeypatch, capsys):
    from llmlite.cli.output import answer_pieces

    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    answer = list(answer_pieces(iter([(R, "Hmm."), (A, "Yes.")]), show_reasoning=True))
    assert answer == ["Yes."]
    assert capsys.readouterr().err == "\x1b[2mHmm.\x1b[0m\n"
