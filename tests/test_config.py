"""llmlite/config.py: the hyper-parameters read once per open file, and the C
llm_config made from them (ModelConfig.to_c), with one-line errors for what the C
forward pass cannot run."""
import gguf
import numpy as np
import pytest

from llmlite.config import ModelConfig
from llmlite.gguf import GGUFError, open_gguf


def _model_file(path, arch="llama", floats=(), strings=(), **sizes):
    """A GGUF holding only hyper-parameters (block_count 6 unless given; a size of None is
    left out), and the float and string values given as (key, value) pairs."""
    w = gguf.GGUFWriter(str(path), arch)
    values = {"block_count": 6, "embedding_length": 64, "feed_forward_length": 128, "attention.head_count": 4}
    for key, v in {**values, **sizes}.items():
        if v is not None:
            w.add_uint32(f"{arch}.{key}", v)
    for key, v in floats:
        w.add_float32(f"{arch}.{key}", v)
    for key, v in strings:
        w.add_string(f"{arch}.{key}", v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.mark.parametrize("arch,sizes,words", [
    ("mamba", {}, "unsupported architecture 'mamba'"),
    ("llama", {"feed_forward_length": None}, "llama.feed_forward_length is missing or 0"),
    ("llama", {"attention.head_count": 0}, "llama.attention.head_count is missing or 0"),
    ("qwen2", {"embedding_length": None}, "qwen2.embedding_length is missing or 0"),
])
def test_unrunnable_refused_in_one_line(tmp_path, arch, sizes, words):
    # refused when read, so that `llmlite info` says what `run` says (exit 2, a bad file)
    with open_gguf(_model_file(tmp_path / "m.gguf", arch, **sizes)) as g:
        with pytest.raises(GGUFError, match=words) as e:
            ModelConfig.from_gguf(g)
    assert "\n" not in str(e.value)


def test_to_c_fields(tmp_path):
    with open_gguf(_model_file(tmp_path / "g.gguf", "gemma3", **{"attention.sliding_window": 8})) as g:
        cfg = ModelConfig.of(g)
        assert ModelConfig.of(g) is cfg                     # read once per open file
        c = cfg.to_c(100, flash_attn=True)
    assert (c.n_layer, c.n_embd, c.n_ff, c.n_head, c.n_head_kv, c.head_dim, c.n_vocab) == (6, 64, 128, 4, 4, 16, 100)
    assert (c.rope_neox, c.ffn_gelu, c.flash_attn, c.swa_pattern, c.sliding_window) == (1, 1, 1, 6, 8)
    assert c.attn_scale == 1.0 and c.q_prescale == np.float32(0.25) and c.embd_scale == np.float32(8.0)
    assert cfg.c_windows() == [8, 8, 8, 8, 8, 0]           # Gemma 3's default: every 6th layer global


@pytest.mark.parametrize("arch, shexp, norm_w", [("qwen3moe", 0, 1), ("qwen2moe", 96, 0)])
def test_to_c_expert_fields(tmp_path, arch, shexp, norm_w):
    """qwen3moe renormalises the chosen experts' weights, qwen2moe adds a shared expert
    (its width defaulting to feed_forward_length, as llama.cpp's) through its gate"""
    sizes = {"expert_count": 60, "expert_used_count": 4, "expert_feed_forward_length": 32}
    with open_gguf(_model_file(tmp_path / "m.gguf", arch, feed_forward_length=96, **sizes)) as g:
        c = ModelConfig.of(g).to_c(100)
    assert (c.n_expert, c.n_expert_used, c.n_ff_exp, c.n_ff_shexp, c.expert_norm_w) == (60, 4, 32, shexp, norm_w)
    assert c.expert_w_scale == 0.0 and c.shexp_ungated == 0


def test_expert_width_defaults_to_ff_over_used(tmp_path):
    # llama.cpp's default without expert_feed_forward_length: n_ff / n_expert_used
    with open_gguf(_model_file(tmp_path / "m.gguf", "qwen3moe", expert_count=8, expert_used_count=2)) as g:
        assert ModelConfig.of(g).n_ff_exp == 64


def test_to_c_gptoss_fields(tmp_path):
    """gpt-oss as llama.cpp's openai_moe reads it: sliding-window layers every other one
    (from layer 0) with the full layers' rope base and scale, YaRN from rope.scaling.type,
    top-k-then-softmax routing and the clamped SwiGLU; the gating key is not refused"""
    sizes = {"block_count": 4, "feed_forward_length": 64, "attention.sliding_window": 128, "expert_count": 32,
             "expert_used_count": 4, "expert_feed_forward_length": 64, "expert_gating_func": 3,
             "rope.scaling.original_context_length": 4096}
    _model_file(tmp_path / "g.gguf", "gpt-oss", floats=[("rope.freq_base", 150000.0), ("rope.scaling.factor", 32.0)],
                strings=[("rope.scaling.type", "yarn")], **sizes)
    with open_gguf(tmp_path / "g.gguf") as g:
        cfg = ModelConfig.of(g)
        c = cfg.to_c(100)
    assert cfg.c_windows() == [128, 0, 128, 0]
    assert (c.rope_base, c.rope_base_swa) == (150000.0, 150000.0) and c.rope_scale == c.rope_scale_swa == 1 / 32
    assert (c.rope_ext_factor, c.rope_attn_factor, c.yarn_beta_fast, c.yarn_beta_slow, c.n_ctx_orig) == \
        (1.0, 1.0, 32.0, 1.0, 4096)
    assert (c.expert_softmax_k, c.expert_norm_w) == (1, 0)
    assert (c.swiglu_alpha, c.swiglu_limit) == (np.float32(1.702), 7.0)
    assert cfg.gpu_missing == "mixture-of-experts layers"


def test_yarn_keeps_a_model_off_the_gpu(tmp_path):
    """The CUDA backend has no YaRN rope: a dense model with it stays on the CPU (one line),
    one without any rope scaling does not"""
    _model_file(tmp_path / "y.gguf", "qwen2", floats=[("rope.scaling.factor", 4.0)],
                strings=[("rope.scaling.type", "yarn")])
    with open_gguf(tmp_path / "y.gguf") as g:
        cfg = ModelConfig.of(g)
        c = cfg.to_c(100)
    assert cfg.gpu_missing == "YaRN rope" and c.rope_ext_factor == 1.0 and c.rope_scale == 0.25
    with open_gguf(_model_file(tmp_path / "d.gguf", "qwen2")) as g:
        assert ModelConfig.of(g).gpu_missing is None


def test_to_c_smollm3_and_mistral3_fields(tmp_path):
    """smollm3: every 4th layer without rope (llama.cpp's fixed step; no key); mistral3:
    the query temperature, its floor the original context (else the training context),
    and YaRN's betas and log multiplier from the file"""
    with open_gguf(_model_file(tmp_path / "s.gguf", "smollm3", block_count=8)) as g:
        c = ModelConfig.of(g).to_c(100)
    assert list(c.rope_skip[0:9]) == [0, 0, 0, 1, 0, 0, 0, 1, 0] and c.rope_neox == 0
    temp = [("attention.temperature_scale", 0.1), ("rope.scaling.factor", 16.0),
            ("rope.scaling.yarn_log_multiplier", 1.0), ("rope.scaling.yarn_beta_fast", 16.0)]
    for orig, floor in ((4096, 4096), (None, 2048)):
        _model_file(tmp_path / "m.gguf", "mistral3", floats=temp, strings=[("rope.scaling.type", "yarn")],
                    context_length=2048, **{"rope.scaling.original_context_length": orig})
        with open_gguf(tmp_path / "m.gguf") as g:
            c = ModelConfig.of(g).to_c(100)
        assert (c.attn_temp_scale, c.attn_temp_floor, c.n_ctx_orig) == (np.float32(0.1), floor, floor)
        assert (c.yarn_log_mul, c.yarn_beta_fast, c.yarn_beta_slow, c.rope_neox) == (1.0, 16.0, 1.0, 0)
        assert sum(c.rope_skip) == 0
