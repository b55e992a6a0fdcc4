#!/bin/sh
# In-place build of the C extension for development (serialised: several
# people may build at once). `pip install -e .` does the same.
cd "$(dirname "$0")" && exec flock /tmp/llmlite-build.lock python -c "
import sys; sys.path.insert(0, 'llmlite')
from _build import ffibuilder
ffibuilder.compile(tmpdir='.', verbose=False)
"
