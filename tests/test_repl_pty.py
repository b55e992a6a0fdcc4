"""The chat REPL driven through a real pseudo-terminal (pexpect), as a person uses it:
turns that reuse the KV cache, Ctrl-C during a reply, /clear, /help, /bye, Ctrl-D,
and a message too long for the context."""
import os
import re
import sys
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

ROOT = Path(__file__).resolve().parents[1]
STATS = re.compile(r"prompt (\d+) tokens(?: \((\d+) cached\))?, [^|]*\| generated (\d+) tokens[^|]*\| stop: (\w+)")
PROMPT = "> "


def spawn(*args, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1", TERM="dumb")
    c = pexpect.spawn(sys.executable, ["-m", "llmlite", "chat", *map(str, args)], cwd=str(ROOT), env=env,
                      encoding="utf-8", codec_errors="replace", timeout=timeout, dimensions=(50, 250))
    c.expect_exact("llmlite chat:")          # the banner of an interactive session
    c.expect_exact(PROMPT)
    return c


def turn(c, text):
    """Send one message; return (reply text, prompt tokens, cached tokens, generated, stop reason)."""
    c.sendline(text)
    c.expect(STATS)
    m = c.match
    out = c.before.replace("\r\n", "\n")
    # the terminal echoes the input line first; the reply follows it
    reply = out.split(text, 1)[-1].strip("\n")
    c.expect_exact(PROMPT)
    return reply, int(m.group(1)), int(m.group(2) or 0), int(m.group(3)), m.group(4)


def finish(c):
    c.sendline("/bye")
    c.expect(pexpect.EOF)
    c.close()
    return c.exitstatus


@pytest.fixture
def closing():
    procs = []
    yield procs.append
    for c in procs:
        if c.isalive():
            c.terminate(force=True)


QUESTION = "What is the capital of France? Answer in one sentence."


def test_repl_two_turns_ctrl_c_clear_bye(smollm2_path, closing):
    c = spawn(smollm2_path, "--temp", "0", "-n", "48", "-c", "1024")
    closing(c)
    # two turns: the second evaluates only what is new
    r1, p1, k1, g1, s1 = turn(c, QUESTION)
    assert "Paris" in r1 and k1 == 0 and s1 in ("eos", "length")
    r2, p2, k2, g2, s2 = turn(c, "And of Germany?")
    assert "Berlin" in r2
    assert k2 >= p1 and p2 > p1 + g1, (p1, g1, p2, k2)        # the whole first exchange came from the cache

    # Ctrl-C during a long reply: the reply stops, the prompt comes back, the chat goes on
    story = "Write a very long story about a dragon who learns to fly."
    c.sendline(story)
    c.expect_exact(story)                     # the echo of the line
    c.expect(r"\S")                           # the reply has begun
    c.send("\x03")
    c.expect_exact("(reply interrupted)")
    c.expect(STATS)
    p3, k3, g3, s3 = int(c.match.group(1)), int(c.match.group(2) or 0), int(c.match.group(3)), c.match.group(4)
    assert s3 == "interrupted" and 1 <= g3 < 48 and k3 >= p2
    c.expect_exact(PROMPT)
    r4, p4, k4, g4, s4 = turn(c, "Thank you. Now name one colour.")
    assert r4.strip() and g4 > 0
    assert k4 >= p3                           # the interrupted turn (and its partial reply) stayed

    c.sendline("/help")
    c.expect_exact("/bye")
    c.expect_exact(PROMPT)
    # /clear: the same question from scratch, the same answer, nothing cached
    c.sendline("/clear")
    c.expect_exact("(conversation cleared)")
    c.expect_exact(PROMPT)
    r5, p5, k5, g5, s5 = turn(c, QUESTION)
    assert (r5, p5, k5, g5) == (r1, p1, 0, g1)
    assert finish(c) == 0


def test_repl_context_overflow_ctrl_d(shared_dir, closing):
    tiny = Path(shared_dir) / "refs" / "synthetic" / "llama-mqa-tiny-f16.gguf"
    if not tiny.exists():
        pytest.skip(f"{tiny} not present")
    c = spawn(tiny, "--temp", "0", "-n", "4", "-c", "96")
    closing(c)
    _, p1, _, g1, _ = turn(c, "Hi")
    # a message the context cannot hold: refused with its size and the -c that fits; the chat goes on
    c.sendline("word " * 120)
    c.expect(r"error: the conversation with this message is (\d+) tokens and does not fit the context of 96: "
             r"message dropped; /clear to start over, or restart with -c (\d+) or more")
    n, fit = int(c.match.group(1)), int(c.match.group(2))
    assert n > 96 and fit >= n
    c.expect_exact(PROMPT)
    _, p2, k2, _, _ = turn(c, "Hi")
    assert k2 >= p1 and p2 < 96                # the dropped message is not in the conversation
    # Ctrl-D at the prompt quits
    c.sendeof()
    c.expect(pexpect.EOF)
    c.close()
    assert c.exitstatus == 0


def test_gauge_and_history_across_sessions(shared_dir, tmp_path, monkeypatch):
    """The prompt shows the context in use; the input history is kept across sessions"""
    tiny = Path(shared_dir) / "refs" / "synthetic" / "llama-mqa-tiny-f16.gguf"
    monkeypatch.setenv("LLMLITE_CACHE", str(tmp_path))
    c = spawn(tiny, "-n", "2", "--temp", "0", "-c", "256")
    assert "[0/256] " in c.before + c.after
    turn(c, "a line to remember")
    c.sendline("/stats")
    c.expect(r"\[[1-9]\d*/256\] ")                     # tokens in use after the first turn
    assert finish(c) == 0
    hist = tmp_path / "chat_history"
    assert hist.is_file() and "a line to remember" in hist.read_text()
