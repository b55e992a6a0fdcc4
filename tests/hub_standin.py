"""A local stand-in for the Hugging Face hub's file endpoints (HF_ENDPOINT points the
real huggingface_hub client at it): HEAD/GET /{repo}/resolve/{rev}/{file} with the
commit, etag (the sha256, as for LFS files) and size headers, byte ranges for
resumed downloads, and the repo file listing. It can send slowly (rate), cut the first download of a
file halfway, or serve bytes that do not match the advertised sha256."""
from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import time

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub:
    def __init__(self):
        self.files: dict[str, dict[str, bytes]] = {}
        self.cut_once: set[tuple[str, str]] = set()    # (repo, file): the next GET stops at half
        self.corrupt: set[tuple[str, str]] = set()     # (repo, file): served bytes differ from the etag
        self.rate = 0                                  # bytes per second a GET sends (0: no limit)
        self.bytes_sent = 0
        hub = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _file(self):
                m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", self.path.split("?")[0])
                if not m:
                    return None, None, None
                repo, _, path = m.groups()
                return repo, path, hub.files.get(repo, {}).get(path)

            def _meta(self, data):
                sha = hashlib.sha256(data).hexdigest()
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{sha}"')
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")

            def _not_found(self, repo):
                """the hub's 404: RepoNotFound for a repository it does not have, else EntryNotFound"""
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound" if repo in hub.files else "RepoNotFound")
                self.end_headers()

            def do_HEAD(self):
                repo, path, data = self._file()
                if data is None:
                    self._not_found(repo)
                    return
                self.send_response(200)
                self._meta(data)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()

            def do_GET(self):
                if self.path.startswith("/api/models/"):
                    repo = re.match(r"^/api/models/([^/]+/[^/?]+)", self.path).group(1)
                    if repo not in hub.files:
                        self._not_found(repo)
                        return
                    files = hub.files[repo]
                    if "/tree/" in self.path:
                        body = [{"type": "file", "path": p, "size": len(d), "oid": "0"} for p, d in files.items()]
                    else:
                        body = {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": p} for p in files]}
                    raw = json.dumps(body).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                    return
                repo, path, data = self._file()
                if data is None:
                    self._not_found(repo)
                    return
                body = data
                if (repo, path) in hub.corrupt:
                    body = bytes([data[0] ^ 0xFF]) + data[1:]
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self._meta(data)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                chunk = body[start:]
                if (repo, path) in hub.cut_once:
                    hub.cut_once.discard((repo, path))
                    chunk = chunk[:len(data) // 2 - start]
                    self.wfile.write(chunk)
                    hub.bytes_sent += len(chunk)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                step = max(1, hub.rate // 20) if hub.rate else len(chunk) or 1
                for i in range(0, len(chunk), step):
                    self.wfile.write(chunk[i:i + step])
                    hub.bytes_sent += len(chunk[i:i + step])
                    if hub.rate:
                        time.sleep(0.05)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
