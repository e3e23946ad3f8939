# Sourced by the project's scripts: create or reuse the project-local virtual environment.
# Reinstalls only when pyproject.toml changed since the last install (a hash stamp in .venv).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
PY=""
for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
        PY=$candidate
        break
    fi
done
if [ -z "$PY" ]; then
    echo "shakeout needs Python >= 3.11 on PATH (tried python3.11, python3, python); install it and rerun." >&2
    exit 2
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating the project's virtual environment in $VENV" >&2
    "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.shakeout-installed"
WANT=$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
    echo "installing shakeout and its dev tools into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[dev]"
    echo "$WANT" >"$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
# Byte-compile the project's own packages (only what changed is compiled again): where
# PYTHONDONTWRITEBYTECODE is set, every interpreter the tests start (pytester sessions, xdist
# workers, example sessions) would otherwise compile them from source, ~1 s each; compiled
# files are still read when that variable is set.
"$VENV/bin/python" -m compileall -q -j 0 harness faults reference_agent shakeout_adapters \
    examples benchmarks >/dev/null
# The same for pytest's assertion rewriting: pytest rewrites every module of a pytest11 plugin's
# distribution (shakeout's packages, anyio's, ...) and caches the result only where bytecode may
# be written, so with PYTHONDONTWRITEBYTECODE set each pytest process rewrote them all again
# (~2 s of CPU per process, measured on `pytest --co` of one scenario file: 5.6 s -> 3.3 s).
# One collection with the variable unset writes that cache; pytest reads it whenever it is
# fresh, and a stale entry (a changed source) is simply rewritten again.
if [ -n "${PYTHONDONTWRITEBYTECODE:-}" ]; then
    PYTHONDONTWRITEBYTECODE= "$VENV/bin/python" -m pytest -p no:cacheprovider --collect-only -q \
        scenarios/already_refunded_declined.yaml tests/test_layout.py >/dev/null 2>&1 || true
fi
