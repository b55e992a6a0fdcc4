"""llama.cpp's CUDA build beside ours on the GPU machine (issue 24's side-by-side).

Here (pack.py calls it): a trimmed source tarball of the llama.cpp that llama-cpp-python
vendors (its sdist, unpacked under /work/ref or in pip's cache): the library, ggml with
its CPU and CUDA backends only, common/, the vendored libraries common needs, and tools/
cut to llama-bench; no docs, models, tests, examples or other backends.

  python3 tools/gpu/device/llamacpp.py tarball SRC_DIR OUT.tar.xz

There (step.sh's llamacpp job, once the tarball and, where the machine has no cmake,
the cmake wheel have arrived in the model stream): built with -DGGML_CUDA=ON for sm_90,
llama-bench -ngl 99 -p 512 -n 128 on each model, and this table against our own bench
(the cliff job's JSON, -ngl 100%):

  python3 tools/gpu/device/llamacpp.py table LLAMA_BENCH.json OURS.json"""
from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

KEEP = ["CMakeLists.txt", "LICENSE", "cmake", "include", "src", "common", "ggml/CMakeLists.txt", "ggml/cmake",
        "ggml/include", "ggml/src", "vendor/CMakeLists.txt", "vendor/cpp-httplib", "vendor/nlohmann",
        "vendor/sheredom", "vendor/hash", "tools/llama-bench"]
# ggml/src's backend folders other than these two are left out (each is added only when enabled)
BACKENDS = {"ggml-cpu", "ggml-cuda"}
# only llama-bench among the tools; mtmd's audio and image libraries are not needed
REWRITE = {
    "tools/CMakeLists.txt": "find_package(Threads REQUIRED)\nllama_add_compile_flags()\nadd_subdirectory(llama-bench)\n",
    "vendor/CMakeLists.txt": ("add_subdirectory(hash)\nadd_subdirectory(nlohmann)\nadd_subdirectory(sheredom)\n"
                              "if (LLAMA_BUILD_COMMON)\n    add_subdirectory(cpp-httplib)\nendif()\n"),
}
# the configure line step.sh uses (kept here so a test can read it)
CMAKE_ARGS = ["-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=90", "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF",
              "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
              "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_APP=OFF", "-DGGML_NATIVE=OFF"]


def kept(rel: str) -> bool:
    parts = rel.split("/")
    if rel in REWRITE:
        return False
    if len(parts) > 2 and parts[:2] == ["ggml", "src"] and parts[2].startswith("ggml-") and "." not in parts[2]:
        return parts[2] in BACKENDS
    return any(rel == k or rel.startswith(k + "/") for k in KEEP)


def make_tarball(src: Path, out: Path) -> int:
    """src: vendor/llama.cpp of the sdist; writes out (tar.xz, members under llama.cpp/)
    and returns its size"""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:xz", preset=9) as tar:
        for p in sorted(src.rglob("*")):
            rel = p.relative_to(src).as_posix()
            if p.is_file() and not p.is_symlink() and kept(rel):
                tar.add(p, f"llama.cpp/{rel}", recursive=False)
        for rel, text in REWRITE.items():
            data = text.encode()
            info = tarfile.TarInfo(f"llama.cpp/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.stat().st_size


def find_source() -> Path | None:
    """vendor/llama.cpp of an unpacked llama-cpp-python sdist: /work/ref's, else none"""
    for base in sorted(Path("/work/ref").glob("llama_cpp_python-*"), reverse=True):
        d = base / "vendor" / "llama.cpp"
        if (d / "CMakeLists.txt").is_file():
            return d
    return None


def table(llama_json: Path, ours_json: Path) -> str:
    """llama-bench's pp512/tg128 against ours at every layer on the GPU"""
    lb = json.loads(llama_json.read_text())
    theirs = {}
    for r in lb:
        t = f"pp{r['n_prompt']}" if r.get("n_prompt") else f"tg{r['n_gen']}"
        theirs[t] = r["avg_ts"]
    ours_b = json.loads(ours_json.read_text())
    full = [t for t in ours_b["tests"] if "test" in t and t["ngl"] == ours_b["n_layer"]]
    ours = {t["test"]: t["tps_mean"] for t in full}
    lines = [f"{ours_b['name']}: llmlite CUDA against llama.cpp CUDA, every layer on the GPU",
             "| test | llmlite t/s | llama.cpp t/s | ratio |", "|---|---|---|---|"]
    for t in sorted(set(theirs) | set(ours), key=lambda s: (not s.startswith("pp"), s)):
        a, b = ours.get(t), theirs.get(t)
        ratio = f"{a / b:.2f}x" if a and b else "-"
        lines.append(f"| {t} | {a:.0f} | {b:.0f} | {ratio} |" if a and b else f"| {t} | {a or '-'} | {b or '-'} | - |")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "tarball":
        n = make_tarball(Path(sys.argv[2]), Path(sys.argv[3]))
        print(f"{sys.argv[3]}: {n / 2**20:.1f} MiB")
        return 0
    if sys.argv[1:] == ["cmake-args"]:
        print(" ".join(CMAKE_ARGS))
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "table":
        print(table(Path(sys.argv[2]), Path(sys.argv[3])))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
