"""Issue 18's polish items: tokenize's byte pieces, /show's effective values and the
context count after /load."""
from __future__ import annotations

import json

import pytest
from helpers import llmlite, rewrite_gguf, spawn_llmlite


def test_tokenize_shows_byte_pieces_as_hex(gemma3_path):
    # gemma3's SPM vocabulary has no token for this emoji's character: it falls back to
    # one <0xNN> token per UTF-8 byte, none of which is UTF-8 on its own
    r = llmlite("tokenize", gemma3_path, "\U0001FAE8", "--no-bos")
    assert r.returncode == 0, r.stderr
    assert "\ufffd" not in r.stdout
    assert [line.split(None, 1)[1] for line in r.stdout.splitlines()] == \
        ['"<0xF0>"', '"<0x9F>"', '"<0xAB>"', '"<0xA8>"']
    # --json keeps piece (invalid UTF-8 replaced) and the exact bytes
    rows = json.loads(llmlite("tokenize", gemma3_path, "\U0001FAE8", "--no-bos", "--json").stdout)
    assert [row["bytes_hex"] for row in rows] == ["f0", "9f", "ab", "a8"]
    assert all(row["piece"] == "\ufffd" for row in rows)


def test_tokenize_byte_level_bpe_piece_cutting_a_character(smollm2_path):
    # smollm2's byte-level BPE splits an emoji into pieces that cut the character
    r = llmlite("tokenize", smollm2_path, "\U0001FAE8", "--no-bos")
    assert r.returncode == 0, r.stderr
    assert "\ufffd" not in r.stdout and "<0xF0>" in r.stdout
    rows = json.loads(llmlite("tokenize", smollm2_path, "\U0001FAE8", "--no-bos", "--json").stdout)
    assert bytes.fromhex("".join(row["bytes_hex"] for row in rows)) == "\U0001FAE8".encode()
    shown = [json.loads(line.split(None, 1)[1]) for line in r.stdout.splitlines()]
    assert shown == ["".join(f"<0x{x:02X}>" for x in bytes.fromhex(row["bytes_hex"])) for row in rows]


def _show_blocks(err: str) -> list[dict]:
    """each /show's lines by their label (model, context, parameters, token ids...)"""
    blocks = []
    for line in err.splitlines():
        label, sep, value = line.partition(": ")
        if label == "model":
            blocks.append({})
        if sep and blocks:
            blocks[-1].setdefault(label, value)
    return blocks


def test_show_prints_the_effective_sampling_values(smollm2_path):
    # smollm2's GGUF sets no general.sampling.*: llama.cpp's defaults, but for what /set changed
    r = llmlite("chat", smollm2_path, input="/set top_k 5\n/show\n/bye\n")
    assert r.returncode == 0, r.stderr
    [show] = _show_blocks(r.stderr)
    assert show["parameters"] == ("temp 0.8, top_k 5, top_p 0.95, min_p 0.05, repeat_penalty 1.0, "
                                  "seed random, lookup on, draft_max 8")


def test_show_takes_the_gguf_sampling_values_under_the_command_line(tiny_path, tmp_path):
    gguf = rewrite_gguf(tiny_path, tmp_path / "sampled.gguf",
                        kv={"general.sampling.temp": 0.5, "general.sampling.top_k": 7, "general.sampling.top_p": 0.75})
    r = llmlite("chat", gguf, "--top-p", "0.5", "--no-lookup", input="/show\n/bye\n")
    assert r.returncode == 0, r.stderr
    [show] = _show_blocks(r.stderr)
    assert show["parameters"] == ("temp 0.5, top_k 7, top_p 0.5, min_p 0.05, repeat_penalty 1.0, "
                                  "seed random, lookup off, draft_max 8")


def test_show_counts_a_loaded_conversation_before_the_next_turn(smollm2_path, tmp_path):
    conv = tmp_path / "conv.json"
    r = llmlite("chat", smollm2_path, "-n", "2", "--temp", "0",
                input=f"hi\n/save {conv}\n/clear\n/load {conv}\n/show\n/bye\n")
    assert r.returncode == 0, r.stderr
    [show] = _show_blocks(r.stderr)
    n = len(json.loads(show["token ids"]))
    assert n > 0 and show["context"] == f"{n} of 4096 tokens in use"   # not 0: nothing evaluated yet
    assert "temp 0.0," in show["parameters"]


def test_gauge_counts_a_loaded_conversation_before_the_next_turn(tiny_path, tmp_path):
    pexpect = pytest.importorskip("pexpect")   # the gauge shows on a terminal only
    conv = tmp_path / "conv.json"
    c = spawn_llmlite("chat", tiny_path, "-c", "256", "-n", "2", env={"TERM": "dumb"}, encoding="utf-8",
                      codec_errors="replace", timeout=60, dimensions=(50, 250))
    gauge = r"\[(\d+)/256\] > "
    c.expect(gauge)
    for line in ("hi", f"/save {conv}", "/clear"):
        c.sendline(line)
        c.expect(gauge)
    assert c.match.group(1) == "0"
    c.sendline(f"/load {conv}")
    c.expect_exact("(conversation loaded")
    c.expect(gauge)
    assert int(c.match.group(1)) > 0          # the loaded turn, before anything is evaluated
    c.sendline("/bye")
    c.expect(pexpect.EOF)
    c.close()
