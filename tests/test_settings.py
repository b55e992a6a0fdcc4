"""settings.py is the one list of llmlite's environment variables: the README's table is made
from it, and no other Python module names one."""
import re
from pathlib import Path

from llmlite import settings

ROOT = Path(__file__).resolve().parents[1]


def test_readme_table_is_the_settings_list():
    readme = (ROOT / "README.md").read_text()
    assert settings.readme_table() in readme, "README's settings table differs from llmlite.settings.readme_table()"


def test_no_module_reads_a_variable_but_settings():
    reads = {}
    for p in (ROOT / "llmlite").rglob("*.py"):
        if p.name != "settings.py":
            for line in p.read_text().splitlines():
                if re.search(r"environ|getenv", line) and "LLMLITE_" in line:
                    reads.setdefault(str(p.relative_to(ROOT)), []).append(line.strip())
    assert not reads, f"read outside settings.py: {reads}"


def test_every_variable_the_code_reads_is_listed():
    listed = {v.name for v in settings.ENV}
    read = set()
    for d in ("llmlite", "csrc"):
        for p in (ROOT / d).rglob("*"):
            if p.suffix in (".py", ".c", ".h", ".cu", ".cuh"):
                read |= set(re.findall(r"LLMLITE_[A-Z][A-Z_]*[A-Z]", p.read_text()))
    read |= set(re.findall(r"LLMLITE_[A-Z][A-Z_]*[A-Z]", (ROOT / "setup.py").read_text()))
    read -= {"LLMLITE_H"}                         # llmlite.h's include guard
    assert read <= listed, f"read but not in settings.ENV: {sorted(read - listed)}"


def test_env_refuses_an_unlisted_name(monkeypatch):
    import pytest

    monkeypatch.setenv("LLMLITE_PLAIN", "1")
    assert settings.env_flag("LLMLITE_PLAIN", False)
    monkeypatch.setenv("LLMLITE_PLAIN", "0")
    assert not settings.env_flag("LLMLITE_PLAIN", True)
    with pytest.raises(AssertionError):
        settings.env("LLMLITE_NOT_A_SETTING")
