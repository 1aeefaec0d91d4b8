#!/bin/sh
# 2. Drain on deregistration: weight 0 at once, the long-lived session to that
# backend keeps echoing, new connections never reach it, and the dest is
# deleted after its session ends. Re-registering a draining backend restores
# it in place (no delete and re-add: its connection counter survives).
. /lab/lib.sh

step "world: b1 and b2 registered, the daemon running"
standard_world 2
write_config <<EOF2
{$FAST, "services": [$(rabbit_service)]}
EOF2
daemon_start
wait_weight tcp "$V" "$D1" 1 10
wait_weight tcp "$V" "$D2" 1 10

step "one long-lived session on each backend"
session_open_on s1 b1
session_open_on s2 b2
ipvsadm -Ln

step "b1 is deregistered: weight 0 at once, entry kept while its session lives"
consul_deregister b1
wait_weight tcp "$V" "$D1" 0 5
h=$(hits 6)
log "banners:$h"
[ "$(count b1 "$h")" -eq 0 ] || fail "the draining b1 got new connections: $h"
hold "has_weight tcp $V $D1 0" 4 "b1 kept at weight 0 while session s1 is open"
expect_session_alive s1
expect_session_alive s2
ipvsadm -Ln

step "s1 ends: b1 is deleted once the kernel shows no connections"
session_close s1
wait_weight tcp "$V" "$D1" absent 30
expect_weight tcp "$V" "$D2" 1
expect_session_alive s2

step "a draining backend that registers again is restored in place"
consul_deregister b2
wait_weight tcp "$V" "$D2" 0 5
before=$(conns tcp "$V" "$D2")
[ "$before" -ge 1 ] || fail "b2 should count s2's connection, found '$before'"
consul_register b2 rabbitmq "$(b4 2)" "$PORT" 1
wait_weight tcp "$V" "$D2" 1 10
after=$(conns tcp "$V" "$D2")
[ "$after" -ge 1 ] || fail "b2's connection count went from $before to $after: deleted and re-added?"
expect_session_alive s2
ipvsadm -Ln
