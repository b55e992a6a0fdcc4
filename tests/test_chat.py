"""Chat templates (sandboxed Jinja), the built-in fallbacks, and the Chat session."""
import copy
import types
from pathlib import Path

import pytest

pytest.importorskip("jinja2")

from llmlite.chat import (BUILTIN_TEMPLATES, Chat, ChatTemplate, ChatTemplateError, ContextFullError,  # noqa: E402
                          looks_instruct, needs_template, prompt_ids, template_for)

SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
TWO_TURNS = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"},
             {"role": "user", "content": "What is 2+2?"}]


@pytest.fixture(scope="module")
def smollm2(smollm2_path):
    import llmlite

    return llmlite.load(smollm2_path, n_ctx=512)


@pytest.fixture(scope="module")
def gemma3(gemma3_path):
    import llmlite

    return llmlite.load(gemma3_path, n_ctx=256)


def _shim(model, template=None, **metadata):
    """The model's tokenizer and metadata, with the template and names replaced."""
    tok = copy.copy(model.tokenizer)
    tok.chat_template = template
    md = {k: v for k, v in model.metadata.items()
          if k not in ("tokenizer.chat_template", "general.name", "general.finetune", "general.basename")}
    md.update(metadata)
    return types.SimpleNamespace(tokenizer=tok, metadata=md, path=Path("model.gguf"))


# ---- rendering ---------------------------------------------------------------------------

def test_smollm2_template_two_turns(smollm2):
    t = template_for(smollm2)
    assert t is not None and "the model's" in t.name
    text = t.render(TWO_TURNS, add_generation_prompt=True)
    assert text == (f"<|im_start|>system\n{SMOL_SYSTEM}<|im_end|>\n"
                    "<|im_start|>user\nHi there<|im_end|>\n"
                    "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n"
                    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                    "<|im_start|>assistant\n")
    # a system message replaces the template's default one; no generation prompt when not asked
    text = t.render([{"role": "system", "content": "Be brief."}] + TWO_TURNS[:2], add_generation_prompt=False)
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
                    "<|im_start|>assistant\nHello! How can I help?<|im_end|>\n")


def test_rendered_chat_tokenizes_like_llama_cpp(smollm2):
    # refs/tokenize.jsonl: llama.cpp's ids for this ChatML text (add_special, parse_special)
    text = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    assert prompt_ids(smollm2, text) == [1, 4093, 198, 1780, 314, 216, 34, 27, 34, 47, 2, 198, 1, 520, 9531, 198]


def test_hf_conventions():
    t = ChatTemplate("{{ bos_token }}|{{ eos_token }}|{{ messages | length }}|{{ add_generation_prompt }}",
                     bos_token="<s>", eos_token="</s>")
    assert t.render([{"role": "user", "content": "x"}], add_generation_prompt=False) == "<s>|</s>|1|False"
    # trim_blocks + lstrip_blocks: block tags leave no blank lines or indentation behind
    t = ChatTemplate("{% for m in messages %}\n    {% if m.role == 'user' %}\n[{{ m.content }}]\n    {% endif %}\n"
                     "{% endfor %}")
    assert t.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) == "[a]\n[b]\n"
    # loop controls, the {% generation %} tag, strftime_now, a tojson that keeps non-ASCII and <>
    t = ChatTemplate("{% for i in range(5) %}{% if i == 2 %}{% break %}{% endif %}{{ i }}{% endfor %}"
                     "{% generation %}G{% endgeneration %}{{ strftime_now('%Y') | length }}"
                     "{{ {'k': '<é>'} | tojson }}")
    assert t.render([]) == '01G4{"k": "<é>"}'


def test_raise_exception_is_a_clear_error():
    t = ChatTemplate("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
                     "{% endif %}ok")
    assert t.render([{"role": "user", "content": "x"}]) == "ok"
    with pytest.raises(ChatTemplateError, match="refused the conversation: System role not supported"):
        t.render([{"role": "system", "content": "x"}])


@pytest.mark.parametrize("src, what", [
    ("{{ ''.__class__.__mro__ }}", "__class__"),
    ("{{ ''.__class__ }}", "__class__"),
    ("{{ messages.__class__.__base__.__subclasses__() }}", "__class__"),
    ("{{ raise_exception.__globals__ }}", "__globals__"),
    ("{{ cycler.__init__.__globals__.os }}", "__init__"),
    ("{% set x = messages.append({'role': 'user', 'content': 'injected'}) %}", "append"),
    ("{{ 'a' * 100000000 }}", "too large"),
    ("{{ 9 ** 9999999 }}", "too large"),
])
def test_sandbox_blocks_attacks(src, what):
    t = ChatTemplate(src)
    with pytest.raises(ChatTemplateError) as ei:
        t.render([{"role": "user", "content": "x"}])
    msg = str(ei.value)
    assert "unsafe" in msg and what in msg
    assert "\n" not in msg


def test_template_errors_are_one_line():
    with pytest.raises(ChatTemplateError, match=r"syntax error \(line 2\)"):
        ChatTemplate("ok\n{% for m in %}{% endfor %}")
    with pytest.raises(ChatTemplateError, match="failed to render"):
        ChatTemplate("{{ messages[0]['content'] + 1 }}").render([{"role": "user", "content": "x"}])
    with pytest.raises(ChatTemplateError, match="empty"):
        ChatTemplate("   ")


def test_range_is_bounded():
    with pytest.raises(ChatTemplateError):
        ChatTemplate("{% for i in range(10**9) %}{% endfor %}").render([])


# ---- choosing a template ----------------------------------------------------------------

def test_gemma3_base_has_no_template(gemma3):
    assert gemma3.metadata.get("tokenizer.chat_template") is None
    assert not needs_template(gemma3)
    assert Chat(gemma3).raw


def test_smollm2_needs_template(smollm2):
    assert needs_template(smollm2)
    assert not Chat(smollm2).raw
    assert Chat(smollm2, raw=True).template is None


def test_looks_instruct():
    assert looks_instruct({"general.finetune": "it"})
    assert looks_instruct({"general.name": "Qwen2.5 0.5B Instruct"})
    assert looks_instruct({}, "models/gemma-3-1b-it-Q4_K_M.gguf")
    assert not looks_instruct({"general.name": "Gemma 3 270m", "general.basename": "gemma-3"},
                              "gemma-3-270m-q4_k_m.gguf")
    assert not looks_instruct({"general.name": "Italian"})   # "it" as a word only


def test_chatml_fallback(tiny):
    m = _shim(tiny, None, **{"general.finetune": "Instruct"})
    t = template_for(m)
    assert t is not None and "chatml" in t.name
    assert t.render(TWO_TURNS[:1]) == "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    # the same vocabulary in a base model: used raw
    assert template_for(_shim(tiny, None, **{"general.name": "tiny base"})) is None
    # the GGUF's own template wins over a fallback
    assert template_for(_shim(tiny, "X{{ messages[0].content }}", **{"general.finetune": "Instruct"})).render(
        TWO_TURNS[:1]) == "XHi there"


def test_gemma_fallback(gemma3):
    m = _shim(gemma3, None, **{"general.finetune": "it"})
    t = template_for(m)
    assert t is not None and "gemma" in t.name
    msgs = [{"role": "system", "content": "Be brief."}] + TWO_TURNS
    assert t.render(msgs) == ("<bos><start_of_turn>user\nBe brief.\n\nHi there<end_of_turn>\n"
                              "<start_of_turn>model\nHello! How can I help?<end_of_turn>\n"
                              "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n")
    with pytest.raises(ChatTemplateError, match="alternate"):
        t.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    # the template prints <bos>: tokenizing must not add a second one
    ids = prompt_ids(gemma3, t.render(TWO_TURNS[:1]))
    bos = gemma3.tokenizer.bos_id
    assert ids[0] == bos and ids[1] != bos and ids.count(bos) == 1
    assert ids[1] == gemma3.tokenizer.token_to_id("<start_of_turn>")
    # a raw prompt for a model that wants BOS gets exactly one
    assert prompt_ids(gemma3, "Hello") == gemma3.tokenize("Hello", add_special=True)
    assert gemma3.tokenizer.token_to_id("<end_of_turn>") in gemma3.tokenizer.eog_ids


def test_builtin_name_and_unknown():
    assert set(BUILTIN_TEMPLATES) == {"chatml", "gemma"}
    fake = types.SimpleNamespace(tokenizer=types.SimpleNamespace(bos_id=None, eos_id=None), metadata={})
    with pytest.raises(ChatTemplateError, match="unknown built-in"):
        template_for(fake, "vicuna")


# ---- the Chat session -----------------------------------------------------------------------

def test_chat_history_and_prefix_reuse(tiny):
    from llmlite.generate import GenStats

    tiny.reset()
    chat = Chat(tiny, system="Be brief.")
    s1 = GenStats()
    r1 = "".join(chat.reply("Hello", max_tokens=6, temperature=0, stats=s1))
    assert s1.cached_tokens == 0 and s1.generated == 6 and s1.stop_reason == "length"
    assert chat.messages == [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": r1}]
    n1 = s1.prompt_tokens
    s2 = GenStats()
    list(chat.reply("More", max_tokens=4, temperature=0, stats=s2))
    # the second turn evaluates only what the cache lacks: the first prompt at least is reused
    assert s2.cached_tokens >= n1
    assert s2.prompt_tokens > n1 + 4
    # the rendered prompt is what was evaluated
    assert chat.render().startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n")
    chat.clear()
    assert chat.messages == [] and tiny.n_past == 0 and chat.system == "Be brief."


def test_partial_reply_stays_in_history(tiny):
    tiny.reset()
    chat = Chat(tiny)
    gen = chat.reply("Hello", max_tokens=50, temperature=0)
    first = next(gen) + next(gen)
    gen.close()   # what an interrupt does
    assert chat.messages[-1]["role"] == "assistant"
    assert chat.messages[-1]["content"] == first and first
    # and the conversation goes on
    assert "".join(chat.reply("Again", max_tokens=2, temperature=0)) is not None
    assert [m["role"] for m in chat.messages] == ["user", "assistant", "user", "assistant"]


def test_context_full_is_refused_cleanly(tiny):
    tiny.reset()
    chat = Chat(tiny)
    with pytest.raises(ContextFullError, match="does not fit the context"):
        list(chat.reply("word " * 400, max_tokens=4))
    assert chat.messages == []      # the turn that did not fit is dropped
    out = "".join(chat.reply("hi", max_tokens=3, temperature=0))
    assert chat.messages[-1]["content"] == out


def test_raw_chat_continues_text(tiny):
    from llmlite.generate import GenStats

    tiny.reset()
    chat = Chat(tiny, raw=True)
    assert chat.template is None
    st = GenStats()
    out = "".join(chat.reply("The capital of France is", max_tokens=5, temperature=0, stats=st))
    assert chat.transcript == "The capital of France is" + out
    tiny.reset()
    assert out == "".join(tiny.generate("The capital of France is", max_tokens=5, temperature=0))
    assert st.prompt_tokens == len(tiny.tokenize("The capital of France is"))


def test_unknown_option_is_refused_before_the_turn(tiny):
    tiny.reset()
    chat = Chat(tiny)
    with pytest.raises(TypeError, match="'temprature'"):
        chat.reply("Hello", max_tokens=2, temprature=0)
    with pytest.raises(ValueError, match="--top-p"):
        chat.reply("Hello", max_tokens=2, top_p=3)
    assert chat.messages == [] and tiny.n_past == 0
    with pytest.raises(TypeError, match="'lookups'"):
        tiny.generate("Hello", max_tokens=2, lookups=True)      # the public API refuses it at the call
    want = "".join(tiny.generate("Hello", max_tokens=6, temperature=0))
    assert "".join(tiny.generate("Hello", max_tokens=6, temperature=0, lookup=True)) == want
