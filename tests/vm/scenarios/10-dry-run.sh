#!/bin/sh
# 10. --dry-run prints its plan in ipvsadm syntax and writes nothing: the
# table (with a wrong weight, a stale dest and a foreign service) stays as
# it is, and no backend is probed.
. /lab/lib.sh

step "world: b1, b2 registered; the kernel has b1 at weight 5 and a stale dest .19"
standard_world 2
ipvsadm -A -t "$V" -s wlc
ipvsadm -a -t "$V" -r "$D1" -m -w 5
ipvsadm -a -t "$V" -r "203.0.113.19:$PORT" -m -w 1
ipvsadm -A -t 192.0.2.99:80 -s rr
snap=$(snapshot)
echo "$snap"
write_config <<EOF2
{$FAST, "services": [$(rabbit_service)]}
EOF2
probes1=$(accepted 1)
probes2=$(accepted 2)

step "consul-ipvs --once --dry-run"
out=$(consul-ipvs --config "$T/config.json" --once --dry-run 2>"$T/dry.err")
rc=$?
echo "$out"
[ "$rc" -eq 0 ] || { cat "$T/dry.err"; fail "--once --dry-run exited $rc"; }
echo "$out" | grep -qxF "ipvsadm -e -t $V -r $D1 -m -w 1" || fail "plan lacks the weight repair for b1"
echo "$out" | grep -q "^ipvsadm -a -t $V -r $D2 -m -w [0-9]" || fail "plan lacks adding b2"
echo "$out" | grep -q "203.0.113.19:$PORT" || fail "plan says nothing about the stale dest .19"
echo "$out" | grep -q "192.0.2.99" && fail "plan touches the foreign service 192.0.2.99:80"
expect_snapshot "$snap" "--dry-run wrote to the kernel"
[ "$(accepted 1)" = "$probes1" ] && [ "$(accepted 2)" = "$probes2" ] || fail "--dry-run probed a backend"
log "ok: plan printed, table unchanged, no probe sent"

step "consul-ipvs --dry-run (looping) for 3 s, then SIGTERM"
consul-ipvs --config "$T/config.json" --dry-run >"$T/dry-loop.out" 2>&1 &
pid=$!
hold "[ \"\$(snapshot)\" = \"\$snap\" ]" 3 "table unchanged while the dry run loops"
kill -TERM "$pid"
wait "$pid"
log "dry run exited with $?"
expect_snapshot "$snap" "--dry-run wrote to the kernel"
[ "$(accepted 1)" = "$probes1" ] && [ "$(accepted 2)" = "$probes2" ] || fail "--dry-run probed a backend"
grep -q "ipvsadm -e -t $V -r $D1 -m -w 1" "$T/dry-loop.out" || fail "the looping dry run printed no plan"
