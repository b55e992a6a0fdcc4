import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("LLMLITE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from llmlite.registry import ensure_model

    return ensure_model("smollm2-135m", quiet=True)


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    from llmlite.registry import ensure_model

    return ensure_model("gemma3-270m", quiet=True)
