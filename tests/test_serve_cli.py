"""`llmlite serve` as a person starts it: the line saying where it listens, the warning
for every interface without a key, and the README's curl example run as written
(only the port changed, to a free one)."""
from __future__ import annotations

import json
import queue
import re
import shutil
import subprocess
import threading

import pytest

from helpers import ROOT, start_llmlite


class _Serving:
    """a `llmlite serve` process, its stderr read line by line in a thread (a hung
    server fails the test after a timeout rather than hanging it)"""

    def __init__(self, *args):
        self.p = start_llmlite("serve", *args, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=lambda: [self.lines.put(x) for x in self.p.stderr], daemon=True)
        self.reader.start()

    def until_listening(self) -> tuple[list[str], int]:
        """the stderr lines up to the one saying where it listens, and its port"""
        seen = []
        while True:
            line = self.lines.get(timeout=120)
            seen.append(line)
            m = re.match(r"llmlite serve: .* on http://[^:]+:(\d+)/v1", line)
            if m:
                return seen, int(m.group(1))

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()


@pytest.fixture
def serve():
    started = []

    def start(*args):
        started.append(_Serving(*args))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def _readme_curl() -> str:
    text = (ROOT / "README.md").read_text()
    block = text[text.index("## Server"):].split("```sh\n", 1)[1].split("```", 1)[0]
    return block[block.index("curl "):]


def test_serve_on_every_interface_warns_without_a_key(serve, tiny_path):
    s = serve(tiny_path, "--host", "0.0.0.0", "--port", "0", "-c", "256")
    lines, port = s.until_listening()
    assert any(x.startswith("warning: listening on 0.0.0.0 without --api-key") for x in lines), lines
    assert "llama-mqa-tiny-f16.gguf" in lines[-1] and port > 0
    k = serve(tiny_path, "--host", "0.0.0.0", "--port", "0", "-c", "256", "--api-key", "k")
    lines, _ = k.until_listening()
    assert not any("warning" in x for x in lines), lines


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_readme_curl_example(serve, tiny_path):
    s = serve(tiny_path, "--port", "0", "-c", "256")
    lines, port = s.until_listening()
    assert not any("warning" in x for x in lines), lines
    cmd = _readme_curl().replace(":8080/", f":{port}/")
    r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["object"] == "chat.completion" and out["choices"][0]["message"]["role"] == "assistant"
    assert 0 < out["usage"]["completion_tokens"] <= 32


def test_ctrl_c_ends_open_streams(serve, smollm2_path):
    """SIGINT while a reply streams: the stream ends at once with a 503 event, the server
    exits as an interrupted command does (130), quietly"""
    import signal

    httpx = pytest.importorskip("httpx")
    s = serve(smollm2_path, "--port", "0", "-c", "2048")
    _, port = s.until_listening()
    body = {"prompt": "Once upon a time", "max_tokens": 1500, "stream": True}
    with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()
        next(x for x in lines if x.startswith("data: "))          # it is generating
        s.p.send_signal(signal.SIGINT)
        rest = [x for x in lines if x.startswith("data: ")]
    assert json.loads(rest[-1][6:])["error"]["code"] == "server_shutting_down"
    assert s.p.wait(20) == 130
    s.reader.join(10)                    # to the end of its stderr
    left = []
    while not s.lines.empty():
        left.append(s.lines.get())
    assert not any("Traceback" in x or x.startswith("error") for x in left), left
