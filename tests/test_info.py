"""`llmlite info` on the real models (text and --json), and its handling of bad input."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from llmlite.cli import app
from llmlite.gguf import open_gguf

from helpers import llmlite

runner = CliRunner()


def info(*args):
    r = runner.invoke(app, ["info", *map(str, args)])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    return r


def one_error(r, needle: str, code: int = 2) -> str:
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    return lines[0]


def _tensor_sums(path):
    with open_gguf(path) as g:
        el = sum(t.n_elements for t in g.tensors.values())
        nb = sum(t.nbytes for t in g.tensors.values())
        return el, nb, len(g.tensors)


def test_info_json_smollm2(smollm2_path):
    r = info(smollm2_path, "--json")
    assert r.exit_code == 0, r.stderr
    f = json.loads(r.stdout)
    el, nb, nt = _tensor_sums(smollm2_path)
    assert f["architecture"] == "llama" and f["n_layer"] == 30 and f["vocab_size"] == 49152
    assert f["chat_template"] is True
    assert f["parameters"] == el == 134515008 and f["n_tensors"] == nt == 272
    assert f["active_parameters"] == el and f["experts"] is None     # dense: every weight runs
    assert (f["n_head"], f["n_head_kv"], f["head_dim"], f["n_embd"], f["n_ff"]) == (9, 3, 64, 576, 1536)
    assert f["n_ctx_train"] == 8192 and f["gguf_version"] == 3
    assert f["tokenizer"] == {"model": "gpt2", "kind": "BPE", "pre": "smollm", "bos_token_id": 1,
                              "eos_token_id": 2, "add_bos_token": False}
    types = {t["type"]: t for t in f["tensor_types"]}
    assert set(types) == {"Q4_1", "Q8_0", "F32"}
    assert types["Q4_1"]["bits_per_weight"] == 5.0 and types["Q8_0"]["bits_per_weight"] == 8.5
    assert sum(t["count"] for t in types.values()) == nt
    assert sum(t["elements"] for t in types.values()) == el
    m = f["memory"]
    assert m["n_ctx"] == 4096 and m["weights_bytes"] == nb
    assert m["kv_cache_bytes"] == 2 * 30 * 4096 * 3 * 64 * 2
    assert m["total_bytes"] == nb + m["kv_cache_bytes"]
    assert m["kv_cache_windowed_bytes"] is None and f["sliding_window"] == 0
    assert f["bits_per_weight"] == round(8 * nb / el, 4)
    assert f["file_size"] == smollm2_path.stat().st_size


def test_info_json_gemma3_with_ctx(gemma3_path):
    r = info(gemma3_path, "--json", "-c", "8192")
    assert r.exit_code == 0, r.stderr
    f = json.loads(r.stdout)
    el, nb, _ = _tensor_sums(gemma3_path)
    assert f["architecture"] == "gemma3" and f["n_layer"] == 18 and f["vocab_size"] == 262144
    assert f["parameters"] == el and f["chat_template"] is False
    assert f["tokenizer"]["kind"] == "SPM" and f["tokenizer"]["model"] == "llama"
    assert (f["n_head"], f["n_head_kv"], f["head_dim"]) == (4, 1, 256)
    assert f["sliding_window"] == 512 and f["n_swa_layers"] == 15
    m = f["memory"]
    assert m["n_ctx"] == 8192
    assert m["kv_cache_bytes"] == 2 * 18 * 8192 * 1 * 256 * 2
    assert m["kv_cache_windowed_bytes"] == 2 * (3 * 8192 + 15 * 512) * 256 * 2
    assert m["total_windowed_bytes"] == nb + m["kv_cache_windowed_bytes"]
    assert {t["type"] for t in f["tensor_types"]} == {"Q8_0", "Q5_0", "Q4_K", "Q6_K", "F32"}


def test_info_text(smollm2_path, gemma3_path):
    r = info(smollm2_path)
    assert r.exit_code == 0 and r.stderr == ""
    out = r.stdout
    for s in ["llama", "134.5M (134,515,008)", "9 (KV heads 3)", "49,152 (BPE, gpt2, pre smollm)",
              "chat template", "yes", "Q4_1", "Q8_0", "5.00", "8.50", "memory at context 4,096", "KV cache",
              "90.00 MiB", "GGUF v3"]:
        assert s in out, s
    r = info(gemma3_path)
    assert r.exit_code == 0 and r.stderr == ""
    for s in ["gemma3", "262,144 (SPM, llama", "512 tokens on 15 of 18 layers", "Q4_K", "Q6_K",
              "72.00 MiB", "KV windowed", "19.50 MiB"]:
        assert s in r.stdout, s


def test_info_by_alias(smollm2_path):
    r = info("smollm2-135m", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["path"] == str(smollm2_path)


def test_bad_inputs(tmp_path):
    one_error(info(tmp_path / "missing.gguf"), "missing.gguf: no such file")
    one_error(info(tmp_path), "is a directory")
    (tmp_path / "empty.gguf").write_bytes(b"")
    one_error(info(tmp_path / "empty.gguf"), "not a GGUF file (it is empty)")
    (tmp_path / "text.txt").write_text("hello, this is not a model\n")
    one_error(info(tmp_path / "text.txt"), "not a GGUF file (it starts with b'hell'")
    (tmp_path / "two.gguf").write_bytes(b"GG")
    one_error(info(tmp_path / "two.gguf"), "not a GGUF file (only 2 bytes)")
    one_error(info("no-such-alias"), "unknown model alias 'no-such-alias'")


def test_bad_ctx(smollm2_path):
    one_error(info(smollm2_path, "-c", "0"), "-c/--ctx-size must be positive")
    r = info(smollm2_path, "-c", "lots")
    assert r.exit_code == 2 and "Traceback" not in r.stderr  # Typer's own usage error


def test_verbose_shows_traceback(tmp_path):
    (tmp_path / "x.gguf").write_bytes(b"nope")
    r = runner.invoke(app, ["--verbose", "info", str(tmp_path / "x.gguf")])
    assert r.exit_code == 2
    assert "Traceback" in r.stderr and r.stderr.splitlines()[-1].startswith("error: ")


def test_internal_error_is_one_line(monkeypatch, smollm2_path):
    import llmlite.cli.info as cli

    def broken(*a, **k):
        raise KeyError("boom")

    monkeypatch.setattr(cli, "model_facts", broken)
    r = info(smollm2_path)
    one_error(r, "internal error: KeyError", code=1)
    assert "--verbose" in r.stderr


def test_python_dash_m_and_subprocess_errors(smollm2_path, tmp_path):
    r = llmlite("info", smollm2_path, "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_layer"] == 30
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (2**63).to_bytes(8, "little") + bytes(8))
    r = llmlite("info", bad, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and "2^63 tensors" in r.stderr


def test_info_plan_what_if(smollm2_path):
    """`info --plan` places the layers for any --vram without loading: none with no
    room, all (and the head) with plenty, -ngl N as asked; the text shows both sides
    and the cliff"""
    def plan(*args):
        r = CliRunner().invoke(app, ["info", str(smollm2_path), "--plan", "-c", "2048", *args, "--json"])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    p = plan("--vram", "0.5")                       # all of it is the margin
    assert p["n_gpu"] == 0 and p["gpu"]["weights"] == 0
    p = plan("--vram", "40")
    assert p["n_gpu"] == p["n_layer"] == 30 and p["head_on_gpu"] and p["cpu"]["layers"] == [0, 0]
    p = plan("--vram", "40", "-ngl", "12")
    assert p["n_gpu"] == 12 and p["gpu"]["layers"] == [18, 30] and not p["head_on_gpu"]
    # a margin that leaves room for some layers only: fewer than all, more than none
    p = plan("--vram", "0.6", "--vram-margin", "512")
    assert 0 < p["n_gpu"] < 30 and p["gpu"]["weights"] + p["gpu"]["kv"] + p["gpu"]["compute"] <= 0.6 * 2**30 - 2**29
    r = CliRunner().invoke(app, ["info", str(smollm2_path), "--plan", "--vram", "0.6"])
    assert r.exit_code == 0 and "layers on the GPU" in r.stdout and "CPU:" in r.stdout and "50%" in r.stdout
