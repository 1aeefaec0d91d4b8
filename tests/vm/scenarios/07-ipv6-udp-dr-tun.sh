#!/bin/sh
# 7. IPv6 VIP and backends from Consul (with a live session through a settings
# change applied in place), a UDP service, DR and TUN forwarding, persistence:
# each programmed as configured, as ipvsadm shows it.
. /lab/lib.sh

step "world: b1, b2 registered as rabbitmq6 at their IPv6 addresses; UDP echo on 53"
net_setup 2
backend_start 1
backend_start 2
udp_backend_start 1 53
udp_backend_start 2 53
consul_start
consul_register b1-v6 rabbitmq6 "$(b6 1)" "$PORT" 1
consul_register b2-v6 rabbitmq6 "$(b6 2)" "$PORT" 2
V6="[$VIP6]:$PORT"
D61="[$(b6 1)]:$PORT"
D62="[$(b6 2)]:$PORT"
cfg() {
    cat <<EOF2
{$FAST, "services": [
 {"name":"rabbitmq6","vip":"$V6","protocol":"tcp","scheduler":"$1","forward":"nat",
  "consul":{"service":"rabbitmq6","tags":["amqp"]},"check":{"port":$PORT},
  "allowed_backends":["2001:db8:b::/64"]},
 {"name":"dns","vip":"$VIP4:53","protocol":"udp","scheduler":"rr","forward":"nat",
  "backends":["$(b4 1):53","$(b4 2):53"],"check":{"port":$PORT}},
 {"name":"web-dr","vip":"192.0.2.20:80","protocol":"tcp","scheduler":"wrr","forward":"dr",
  "persistence_s":300,"backends":[{"address":"$(b4 1):80","weight":2}],"check":false},
 {"name":"web-tun","vip":"192.0.2.21:80","protocol":"tcp","scheduler":"wrr","forward":"tun",
  "backends":["$(b4 2):80"],"check":false}
]}
EOF2
}
cfg wlc | write_config
daemon_start

step "IPv6: the VIP and both backends with Consul's weights"
wait_weight tcp "$V6" "$D61" 1 10
wait_weight tcp "$V6" "$D62" 2 10
services | grep -qxF "tcp $V6 wlc" || fail "IPv6 service should use wlc: $(services)"
h=$(hits 6 "$VIP6")
log "banners over IPv6:$h"
[ "$(count b1 "$h")" -ge 1 ] && [ "$(count b2 "$h")" -ge 1 ] || fail "IPv6 VIP should reach b1 and b2: $h"

step "UDP: the service and its dests, and a datagram answered through the VIP"
wait_weight udp "$VIP4:53" "$(b4 1):53" 1 10
wait_weight udp "$VIP4:53" "$(b4 2):53" 1 10
r=$(udp_hit "$VIP4" 53)
case $r in b1|b2) log "ok: UDP answer from $r" ;; *) fail "no UDP answer through the VIP (got '$r')" ;; esac

step "DR and TUN: forwarding, weights and persistence as configured"
wait_weight tcp 192.0.2.20:80 "$(b4 1):80" 2 10
wait_weight tcp 192.0.2.21:80 "$(b4 2):80" 1 10
table | grep -q "^tcp 192.0.2.20:80 $(b4 1):80 Route " || fail "web-dr should forward by Route (DR)"
table | grep -q "^tcp 192.0.2.21:80 $(b4 2):80 Tunnel " || fail "web-tun should forward by Tunnel"
ipvsadm -Ln | grep -q "^TCP  192.0.2.20:80 wrr persistent 300" || fail "web-dr should be persistent 300"
ipvsadm -Ln

step "a scheduler change by reload is applied in place: the IPv6 session and its count survive"
session_open s6 "$VIP6"
b=$(session_backend s6)
d=$D61
[ "$b" = b2 ] && d=$D62
before=$(conns tcp "$V6" "$d")
cfg rr | write_config
kill -HUP "$(daemon_pid)"
wait_for "services | grep -qxF 'tcp $V6 rr'" 8 "IPv6 service now rr"
after=$(conns tcp "$V6" "$d")
[ "$after" -ge 1 ] && [ "$after" -ge "$before" ] || fail "$d connection count went $before -> $after: service re-created?"
expect_session_alive s6
ipvsadm -Ln
