#!/usr/bin/env bash
# Run every check the project has: lint, format, types, then the whole pytest suite (tests and
# the scenario library) under branch coverage with the floor in .ci/coverage-floor.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k ledger`).
source "$(dirname "$0")/env.sh"

echo "== ruff check" && ruff check .
echo "== ruff format --check" && ruff format --check .
echo "== mypy (strict)" && mypy
echo "== chromium (the HTML report is tested in a headless browser)"
if ! bash scripts/install-chromium.sh; then
    if [ "${CI:-}" = "true" ]; then
        echo "could not install chromium, and CI needs it for the HTML report test" >&2
        exit 1
    fi
    echo "chromium unavailable: the HTML browser test will be skipped on this machine" >&2
fi
echo "== pytest (under coverage)"
coverage erase
set +e
coverage run -m pytest -n 2 -p no:cacheprovider --durations=30 "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests (exit 5): that is a failure here; check the paths and -k filter." >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    exit "$status"
fi
echo "== coverage (floor $(cat .ci/coverage-floor)%)"
coverage combine -q
coverage report --fail-under="$(cat .ci/coverage-floor)"
