#!/usr/bin/env bash
# Print the path of the Python that .python-version pins (pyenv, or pythonX.Y on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(cut -d. -f1,2 .python-version)
full=$(tr -d '[:space:]' < .python-version)
for cand in \
    "$(command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/$full/bin/python" \
    "$(command -v pyenv >/dev/null 2>&1 && pyenv which python 2>/dev/null || true)" \
    "$(command -v "python$want" || true)" \
    "$(command -v python3 || true)"; do
    if [ -n "$cand" ] && [ -x "$cand" ] &&
        "$cand" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$want'.split('.'))))" 2>/dev/null; then
        echo "$cand"
        exit 0
    fi
done
echo "Python $want is needed (see .python-version); install it with pyenv or your package manager." >&2
exit 1
