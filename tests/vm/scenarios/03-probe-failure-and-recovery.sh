#!/bin/sh
# 3. Probe failure and recovery: a backend whose listener dies goes to weight
# 0 after `fall` probes, stays in the table, keeps its open session; it comes
# back after `rise` probes. Consul maintenance (critical) does the same.
. /lab/lib.sh

step "world: b1 and b2 registered, the daemon running (fall 2, rise 2, every 300 ms)"
rabbitmq_up
session_open_on s1 b1

step "b1's listener dies (its open session is served by a forked child)"
backend_stop 1
wait_weight tcp "$V" "$D1" 0 8
hold "has_weight tcp $V $D1 0" 3 "b1 stays in the table at weight 0 (still registered)"
expect_session_alive s1
h=$(hits 4)
log "banners:$h"
[ "$(count b1 "$h")" -eq 0 ] || fail "b1 is down yet got new connections: $h"
expect_weight tcp "$V" "$D2" 1

step "b1's listener is back: weight 1 after rise"
backend_start 1
wait_weight tcp "$V" "$D1" 1 8
expect_session_alive s1
# wlc counts an active session as 256 inactive ones: end s1, or every new
# connection would go to b2 whatever b1's weight.
session_close s1
h=$(hits 6)
log "banners:$h"
[ "$(count b1 "$h")" -ge 1 ] || fail "b1 is back yet got no new connection: $h"
session_open s2

step "Consul puts b2 in maintenance (critical): weight 0, entry kept"
consul_maintenance b2 true
wait_weight tcp "$V" "$D2" 0 5
hold "has_weight tcp $V $D2 0" 2 "b2 stays in the table at weight 0"
consul_maintenance b2 false
wait_weight tcp "$V" "$D2" 1 8
expect_session_alive s2
ipvsadm -Ln
