#!/usr/bin/env bash
# Run every check the project has: lint, format, types, then the whole pytest suite with coverage.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k ledger`).
source "$(dirname "$0")/env.sh"

echo "== ruff check" && ruff check .
echo "== ruff format --check" && ruff format --check .
echo "== mypy (strict)" && mypy
echo "== pytest"
set +e
python -m pytest -n 2 --cov --cov-report=term --cov-fail-under="$(cat .ci/coverage-floor)" "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests (exit 5): that is a failure here, check the paths and -k filter." >&2
    exit 1
fi
exit "$status"
