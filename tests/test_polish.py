"""Issue 18's polish items: tokenize's byte pieces, /show's effective values and the
context count after /load."""
from __future__ import annotations

import json

from helpers import llmlite


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
