#!/usr/bin/env bash
# The main job: run the scenario suite against the reference agent, write the fault-injection
# report (JSON, Markdown, HTML) under reports/, and print the gate verdict. Exit code = the gate's
# (0 pass, 1 fail, 2 error); 2 as well when pytest itself did not finish (crash, interrupt,
# internal or usage error), whatever a report says.
# Extra arguments go to pytest (e.g. `bash scripts/suite.sh -k refund_happy`).
source "$(dirname "$0")/env.sh"
mkdir -p reports
REPORT=reports/shakeout.json
# A previous run's files must never be gated as this run's: remove them first, and stamp this
# run's session id into the report so the gate refuses any other file at that path.
rm -f "$REPORT" reports/shakeout.md reports/shakeout.html
SESSION_ID=$(python -c 'import uuid; print(uuid.uuid4().hex)')
set +e
python -m pytest scenarios -p no:cacheprovider -n 2 -q \
    --chaos-session-id="$SESSION_ID" \
    --chaos-report="$REPORT" \
    --chaos-markdown=reports/shakeout.md \
    --chaos-html=reports/shakeout.html "$@"
status=$?
set -e
case "$status" in
    0 | 1) ;;
    5)
        echo "no scenario was collected (pytest exit 5): check the paths and -k filter" >&2
        exit 2
        ;;
    *)
        echo "pytest did not finish (exit $status: crashed, interrupted, or an internal or usage" \
            "error); nothing is gated. See the output above, fix it and rerun." >&2
        exit 2
        ;;
esac
if [ ! -s "$REPORT" ]; then
    echo "the suite wrote no report (pytest exit $status); see the output above" >&2
    exit 2
fi
echo
echo "reports: $REPORT reports/shakeout.md reports/shakeout.html"
exec shakeout gate "$REPORT" --session "$SESSION_ID"
