#!/usr/bin/env bash
# The main job: run the scenario suite against the reference agent, write the fault-injection
# report (JSON, Markdown, HTML) under reports/, and print the gate verdict. Exit code = the gate's.
# Extra arguments go to pytest (e.g. `bash scripts/suite.sh -k refund_happy`).
source "$(dirname "$0")/env.sh"
mkdir -p reports
set +e
python -m pytest scenarios -p no:cacheprovider -n 2 -q \
    --chaos-report=reports/shakeout.json \
    --chaos-markdown=reports/shakeout.md \
    --chaos-html=reports/shakeout.html "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "no scenario was collected (pytest exit 5): check the paths and -k filter" >&2
    exit 2
fi
if [ ! -s reports/shakeout.json ]; then
    echo "the suite wrote no report (pytest exit $status); see the output above" >&2
    exit 2
fi
echo
echo "reports: reports/shakeout.json reports/shakeout.md reports/shakeout.html"
exec shakeout gate reports/shakeout.json
