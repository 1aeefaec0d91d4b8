#!/bin/sh
# 2. Drain on deregistration: weight 0 at once, the long-lived session to that
# backend keeps echoing, new connections never reach it, and the dest is
# deleted after its session ends. Re-registering a draining backend restores
# it in place (no delete and re-add: its connection counter survives). On a
# second service with drain_timeout_s 3, b1 is deleted after 3 s even though
# a session is still open on it.
. /lab/lib.sh

step "world: b1 and b2 registered, the daemon running"
standard_world 2
nsip addr add 192.0.2.12/32 dev dummy0
VT=192.0.2.12:$PORT
write_config <<EOF2
{$FAST, "services": [$(rabbit_service),
 {"name":"rabbitmq-dt","vip":"$VT","protocol":"tcp","scheduler":"wlc","forward":"nat",
  "drain_timeout_s":3,"consul":{"service":"rabbitmq","tags":["amqp"]},
  "check":{"port":$PORT},"allowed_backends":["203.0.113.0/24"]}]}
EOF2
daemon_start
wait_weight tcp "$V" "$D1" 1 10
wait_weight tcp "$V" "$D2" 1 10
wait_weight tcp "$VT" "$D1" 1 10

step "one long-lived session on each backend"
session_open_on s1 b1
session_open_on s2 b2
session_open_on t1 b1 192.0.2.12
ipvsadm -Ln

step "b1 is deregistered: weight 0 at once, entry kept while its session lives"
consul_deregister b1
wait_weight tcp "$V" "$D1" 0 5
hold "has_weight tcp $VT $D1 0" 1.5 "on $VT too, b1 drains (its 3 s drain timeout not yet passed)"
h=$(hits 6)
log "banners:$h"
[ "$(count b1 "$h")" -eq 0 ] || fail "the draining b1 got new connections: $h"
hold "has_weight tcp $V $D1 0" 4 "b1 kept at weight 0 while session s1 is open"
expect_session_alive s1
expect_session_alive s2

step "on $VT (drain_timeout_s 3) b1 is deleted once 3 s have passed, session or not"
wait_weight tcp "$VT" "$D1" absent 8
expect_weight tcp "$V" "$D1" 0
ipvsadm -Ln
session_kill t1

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
