#!/bin/sh
# Runs several scenarios in one boot: sh suite.sh NAME... (files under
# /lab/scenarios/NAME.sh). Each runs in its own shell with a deadline, then
# the VM is reset (processes, namespaces, IPVS table). Markers for the host:
#   SCENARIO-BEGIN: NAME
#   SCENARIO-RESULT: NAME PASS|FAIL (exit N, S s)
# Exits 0 when every scenario passed.
. /lab/lib.sh
failed=0
for name in "$@"; do
    lab_reset
    echo
    echo "SCENARIO-BEGIN: $name"
    start=$(now)
    timeout -s KILL "${SCENARIO_TIMEOUT:-150}" sh "/lab/scenarios/$name.sh"
    rc=$?
    took=$(awk -v a="$start" -v b="$(now)" 'BEGIN{printf "%.0f", b-a}')
    [ "$rc" -eq 137 ] && echo "[$(now)] FAIL: scenario $name killed after ${SCENARIO_TIMEOUT:-150}s"
    if [ "$rc" -eq 0 ]; then verdict=PASS; else verdict=FAIL; failed=$((failed + 1)); fi
    echo "SCENARIO-RESULT: $name $verdict (exit $rc, ${took}s)"
done
lab_reset
echo
echo "suite: $(($# - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
