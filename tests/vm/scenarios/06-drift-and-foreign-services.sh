#!/bin/sh
# 6. Drift: a managed dest deleted or re-weighted by hand, the scheduler
# edited, the whole service deleted, a stray dest added: all repaired within
# the resync interval (2 s; the waits allow 5 s for a slow emulated VM).
# Services not in the config are never touched.
. /lab/lib.sh

step "world: b1, b2 registered; foreign services made by hand"
standard_world 2
backend_ns 3
backend_start 3
ipvsadm -A -t 192.0.2.99:80 -s rr
ipvsadm -a -t 192.0.2.99:80 -r "$(b4 3):80" -m -w 5
ipvsadm -A -u "$V" -s sh
ipvsadm -a -u "$V" -r "$(b4 3):$PORT" -m -w 2
foreign() { ipvsadm -Ln -t 192.0.2.99:80; ipvsadm -Ln -u "$V"; }
fsnap=$(foreign)
echo "$fsnap"
write_config <<EOF2
{$FAST, "services": [$(rabbit_service)]}
EOF2
daemon_start
wait_weight tcp "$V" "$D1" 1 10
wait_weight tcp "$V" "$D2" 1 10

step "b1 deleted by hand comes back"
ipvsadm -d -t "$V" -r "$D1"
wait_weight tcp "$V" "$D1" 1 5

step "b2 re-weighted by hand to 9 goes back to 1"
ipvsadm -e -t "$V" -r "$D2" -m -w 9
wait_weight tcp "$V" "$D2" 1 5

step "the scheduler edited by hand (rr) goes back to wlc"
ipvsadm -E -t "$V" -s rr
wait_for "services | grep -qxF 'tcp $V wlc'" 5 "scheduler wlc again"

step "a stray dest added by hand is drained and deleted (it is in no source)"
ipvsadm -a -t "$V" -r "$D3" -m -w 1
wait_weight tcp "$V" "$D3" absent 12

step "the whole service deleted by hand comes back"
ipvsadm -D -t "$V"
wait_weight tcp "$V" "$D1" 1 10
wait_weight tcp "$V" "$D2" 1 10

step "the foreign services were never touched"
[ "$(foreign)" = "$fsnap" ] || { echo "expected:"; echo "$fsnap"; echo "found:"; foreign; fail "a foreign service changed"; }
hold "[ \"\$(foreign)\" = \"\$fsnap\" ]" 3 "foreign services unchanged"
ipvsadm -Ln
