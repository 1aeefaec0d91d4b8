#!/bin/sh
# 1. Sync from Consul: the VIP appears with the registered backends and the
# weights Consul gives them; tags and allowed_backends filter instances; a
# backend registered later enters at weight 0 and rises only once it answers.
. /lab/lib.sh

step "world: b1 (weight 1), b2 (weight 3) registered; b3 listening but tagged 'other'; a rogue outside allowed_backends"
net_setup 3
backend_start 1
backend_start 2
backend_start 3
consul_start
consul_register b1 rabbitmq "$(b4 1)" "$PORT" 1
consul_register b2 rabbitmq "$(b4 2)" "$PORT" 3
consul_register b3-other rabbitmq "$(b4 3)" "$PORT" 1 '["other"]'
consul_register rogue rabbitmq 198.51.100.2 "$PORT" 1
write_config <<EOF2
{$FAST, "services": [$(rabbit_service)]}
EOF2
daemon_start

step "the VIP appears with Consul's backends and weights"
wait_for "has_service tcp $V" 10 "service tcp/$V exists"
wait_weight tcp "$V" "$D1" 1 10
wait_weight tcp "$V" "$D2" 3 10
ipvsadm -Ln
services | grep -qxF "tcp $V wlc" || fail "scheduler should be wlc: $(services)"
table | awk -v d="$D1" '$3==d {print $4}' | grep -qx Masq || fail "forwarding should be NAT (Masq)"
expect_weight tcp "$V" "$D3" absent
expect_weight tcp "$V" "198.51.100.2:$PORT" absent
log "ok: b3 (wrong tag) and the rogue (outside allowed_backends) are not in the table"

step "new connections reach b1 and b2"
h=$(hits 8)
log "banners:$h"
[ "$(count b1 "$h")" -ge 1 ] || fail "no connection reached b1: $h"
[ "$(count b2 "$h")" -ge 1 ] || fail "no connection reached b2: $h"
[ "$(count b3 "$h")" -eq 0 ] || fail "b3 is not registered with the tag, yet got connections: $h"

step "b3 registers while its listener is down: it enters at weight 0 and stays there"
backend_stop 3
consul_register b3 rabbitmq "$(b4 3)" "$PORT" 2
wait_weight tcp "$V" "$D3" 0 10
hold "has_weight tcp $V $D3 0" 3 "b3 stays at weight 0 while its probes fail"

step "b3's listener comes up: it rises to Consul's weight 2"
backend_start 3
wait_weight tcp "$V" "$D3" 2 10

step "a weight change in Consul is applied in place"
consul_register b1 rabbitmq "$(b4 1)" "$PORT" 4
wait_weight tcp "$V" "$D1" 4 10
ipvsadm -Ln
