#!/usr/bin/env bash
# Create .venv with the pinned Python and install the locked dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
uv_version=$(sed -n 's/^ *"uv==\([0-9.]*\)".*/\1/p' pyproject.toml)
if ! .venv/bin/python -c "import sys; sys.exit(0)" 2>/dev/null; then
    "$(scripts/python.sh)" -m venv .venv
fi
if [ "$(.venv/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "$uv_version" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$uv_version"
fi
# uv's own certificate store misses locally added CAs; use the system's.
export UV_NATIVE_TLS=1 UV_PYTHON_DOWNLOADS=never
.venv/bin/uv sync --frozen --extra carriers --quiet --python .venv/bin/python
