"""The chat REPL driven through a real pseudo-terminal (pexpect), as a person uses it:
turns that reuse the KV cache, Ctrl-C during a reply, /clear, /help, /bye, Ctrl-D,
and a message too long for the context."""
import os
import re
import sys

import pytest

from helpers import llmlite, spawn_llmlite

pexpect = pytest.importorskip("pexpect")

STATS = re.compile(r"prompt (\d+) tokens(?: \((\d+) cached\))?, [^|]*\| generated (\d+) tokens[^|]*\| stop: (\w+)")
PROMPT = "> "


def spawn(*args, timeout=120):
    c = spawn_llmlite("chat", *args, env={"TERM": "dumb"}, encoding="utf-8", codec_errors="replace", timeout=timeout,
                      dimensions=(50, 250))
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


def test_repl_context_overflow_ctrl_d(tiny_path, closing):
    c = spawn(tiny_path, "--temp", "0", "-n", "4", "-c", "96")
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


def test_repl_asks_before_dropping_old_turns(tiny_path, closing):
    """On a terminal a turn that does not fit with the conversation is a [y/N]
    question: y forgets the oldest exchanges and answers; n drops the message."""
    c = spawn(tiny_path, "--temp", "0", "-n", "4", "-c", "160", "--system", "Be terse.")
    closing(c)
    for _ in range(6):
        turn(c, "Hello there, how are you today?")
    long = "tell me " + "more and more " * 12
    ask = r"drop the oldest (\d+) exchanges? to fit\? \[y/N\]\) "
    c.sendline(long)
    c.expect(ask)
    c.sendline("y")
    c.expect_exact(f"(dropped the oldest {c.match.group(1)} exchange")
    c.expect(STATS)
    c.expect_exact(PROMPT)
    c.sendline(long)
    c.expect(ask)
    c.sendline("n")
    c.expect_exact("message dropped")
    c.expect_exact(PROMPT)
    assert finish(c) == 0


def test_gauge_and_history_across_sessions(tiny_path, tmp_path, monkeypatch):
    """The prompt shows the context in use; the input history is kept across sessions"""
    monkeypatch.setenv("LLMLITE_CACHE", str(tmp_path))
    c = spawn(tiny_path, "-n", "2", "--temp", "0", "-c", "256")
    assert "[0/256] " in c.before + c.after
    turn(c, "a line to remember")
    c.sendline("/stats")
    c.expect(r"\[[1-9]\d*/256\] ")                     # tokens in use after the first turn
    assert finish(c) == 0
    hist = tmp_path / "chat_history"
    assert hist.is_file() and "a line to remember" in hist.read_text()


def _timed_turn(c, text):
    """turn(), also returning the time from sending the line to the reply's first
    visible character (the time to first token as the user sees it)"""
    import time

    c.sendline(text)
    t0 = time.perf_counter()
    c.expect_exact(text)                      # the terminal's echo of the line
    c.expect(r"\S")                           # the reply's first character
    ttft = time.perf_counter() - t0
    first = c.after
    c.expect(STATS)
    m = c.match
    reply = (first + c.before).replace("\r\n", "\n").strip("\n")
    c.expect_exact(PROMPT)
    return ttft, reply, int(m.group(1)), int(m.group(2) or 0), int(m.group(3)), m.group(4)


@pytest.mark.slow
def test_ten_turns_with_commands_interrupt_overflow(smollm2_path, tmp_path, closing):
    """A ten-turn conversation through a pseudo-terminal: /set, Ctrl-C mid-reply,
    /save, /regen, /clear + /load, a turn that overflows the context (the REPL asks
    to drop the oldest exchanges), and the time to first token of turn 10 against
    turn 1's: each turn evaluates only what is new, so it does not grow."""
    import json

    c = spawn(smollm2_path, "--temp", "0", "-n", "24", "-c", "640", "--seed", "1")
    closing(c)
    if os.environ.get("LLMLITE_PTY_LOG"):
        c.logfile_read = sys.stderr
    ttft = {}
    # a first exchange, then /clear: the weights are paged in and the code warm, so turn 1
    # below times what the conversation costs, not the process starting
    turn(c, "Hello.")
    c.sendline("/clear")
    c.expect_exact("(conversation cleared)")
    c.expect_exact(PROMPT)
    # 1
    ttft[1], r1, p1, k1, g1, _ = _timed_turn(c, QUESTION)
    assert "Paris" in r1 and k1 == 0
    # 2: sampled, after /set
    for cmd, note in [("/set temp 0.7", "(temp = 0.7)"), ("/set top_k 20", "(top_k = 20)"),
                      ("/set seed 7", "(seed = 7)")]:
        c.sendline(cmd)
        c.expect_exact(note)
        c.expect_exact(PROMPT)
    c.sendline("/set temp -1")
    c.expect_exact("error: --temp must be >= 0")
    c.expect_exact(PROMPT)
    _, r2, p2, k2, g2, _ = _timed_turn(c, "Name a colour.")
    assert r2 and k2 >= p1 + g1 - 1
    c.sendline("/set temp 0")
    c.expect_exact("(temp = 0.0)")
    c.expect_exact(PROMPT)
    # 3: Ctrl-C mid-reply; the partial reply stays in the conversation
    c.sendline("/set lookup off")
    c.expect_exact("(lookup off)")
    c.expect_exact(PROMPT)
    story = "Write a very long story about a dragon who learns to fly."
    c.sendline(story)
    c.expect_exact(story)
    c.expect(r"\S")
    c.send("\x03")
    c.expect_exact("(reply interrupted)")
    c.expect(STATS)
    p3, g3, s3 = int(c.match.group(1)), int(c.match.group(3)), c.match.group(4)
    assert s3 == "interrupted" and g3 < 24
    c.expect_exact(PROMPT)
    # 4
    _, r4, p4, k4, g4, _ = _timed_turn(c, "Thank you. What is two plus two?")
    assert k4 >= p3
    # /save: the four exchanges as JSON
    saved = tmp_path / "chat.json"
    c.sendline(f"/save {saved}")
    c.expect_exact("messages)")
    c.expect_exact(PROMPT)
    data = json.loads(saved.read_text())
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"] * 4
    assert data["messages"][6]["content"] == "Thank you. What is two plus two?"
    # 5: /regen: greedy, so the same reply again, from the cache up to the last question
    c.sendline("/regen")
    c.expect(STATS)
    regen_reply = c.before.replace("\r\n", "\n").split("/regen", 1)[-1].strip("\n")
    assert regen_reply == r4 and int(c.match.group(2) or 0) >= p3
    c.expect_exact(PROMPT)
    # 6: /clear, then /load brings the saved conversation back (re-evaluated once)
    c.sendline("/clear")
    c.expect_exact("(conversation cleared)")
    c.expect_exact(PROMPT)
    c.sendline(f"/load {saved}")
    c.expect_exact("(conversation loaded from")
    c.expect_exact(PROMPT)
    c.sendline("/show")
    c.expect_exact("token ids:")
    assert "capital of France" in c.before and "two plus two" in c.before
    c.expect_exact(PROMPT)
    _, r6, p6, k6, g6, _ = _timed_turn(c, "And three plus three?")
    assert k6 == 0 and p6 > p4 + g4                # after /clear nothing was cached: all of it evaluated
    # 7, 8
    _, _, p7, k7, g7, _ = _timed_turn(c, "Name a fruit.")
    assert k7 >= p6
    _, _, p8, k8, g8, s8 = _timed_turn(c, "Name an animal.")
    assert k8 >= p7 and s8 in ("eos", "length")
    # 9: a long message that does not fit: the REPL asks to drop the oldest exchanges
    # (~440 tokens: with the system message it fits alone, with the ~200 of turns 1-8 it cannot)
    long_msg = "Please summarise the following notes. " + " ".join(f"Note {i}: the sky was blue." for i in range(45))
    c.sendline(long_msg)
    c.expect(r"\(the conversation with this message is (\d+) tokens and the context 640: "
             r"drop the oldest (\d+) exchanges? to fit\? \[y/N\]\) ")
    n_over, k_drop = int(c.match.group(1)), int(c.match.group(2))
    assert n_over >= 640 and k_drop >= 1
    c.sendline("y")
    c.expect_exact(f"(dropped the oldest {k_drop} exchange")
    c.expect(STATS)
    p9, g9 = int(c.match.group(1)), int(c.match.group(3))
    assert p9 < 640 and g9 > 0
    c.expect_exact(PROMPT)
    # 10: the whole conversation so far comes from the cache
    ttft[10], r10, p10, k10, g10, _ = _timed_turn(c, "Thanks. Name a city in Italy.")
    assert k10 >= p9 and r10
    print(f"time to first token: turn 1 {1000 * ttft[1]:.1f} ms ({p1} prompt tokens), turn 10 "
          f"{1000 * ttft[10]:.1f} ms ({p10} prompt tokens, {k10} cached): x{ttft[10] / ttft[1]:.2f}")
    assert ttft[10] <= 1.5 * ttft[1], ttft
    assert finish(c) == 0


def test_markdown_on_a_terminal_plain_otherwise(smollm2_path, closing):
    """A reply is rendered as Markdown on a terminal (the numbered list gets Rich's
    list style, no literal "1."), as the model wrote it with --plain or a pipe"""
    ask = ["run", str(smollm2_path), "--temp", "0", "-n", "60", "-p",
           "Give a numbered list of three fruits, one word each."]
    colour = {"TERM": "xterm", "NO_COLOR": None, "LLMLITE_PLAIN": None}     # what a user's terminal has
    out = {}
    for mode in ("markdown", "plain"):
        c = spawn_llmlite(*ask, *(["--plain"] if mode == "plain" else []), env=colour, encoding="utf-8", timeout=120,
                          dimensions=(40, 100))
        closing(c)
        c.expect(pexpect.EOF)
        out[mode] = c.before.split("\x1b[2mprompt")[0]
    piped = llmlite(*ask, env=colour, timeout=120).stdout
    items = re.findall(r"^\d\. (\w+)", out["plain"].replace("\r\n", "\n"), re.M)
    assert len(items) == 3 and piped.replace("\r\n", "\n").strip() == out["plain"].replace("\r\n", "\n").strip()
    md = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out["markdown"]).replace("\r\n", "\n").replace("\r", "\n")
    assert "\x1b[" in out["markdown"] and not re.search(r"^\d\. ", md, re.M)
    for i, name in enumerate(items, 1):
        assert re.search(rf"^ {i} {name}\b", md, re.M), md
