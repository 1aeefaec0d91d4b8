#!/bin/sh
# 5. Consul faults: down (connection refused), HTTP 500, malformed JSON, a
# truncated body, a hung request, an ACL-filtered empty answer: the table
# stays as it was. Afterwards the daemon still follows Consul.
. /lab/lib.sh

step "world: b1 and b2 registered, the daemon running"
standard_world 2
write_config <<EOF2
{$FAST, "services": [$(rabbit_service)]}
EOF2
daemon_start
wait_weight tcp "$V" "$D1" 1 10
wait_weight tcp "$V" "$D2" 1 10
session_open_on s1 b1
snap=$(snapshot)
normal=$(consul_get /v1/health/service/rabbitmq) || fail "reading the stand-in"
unchanged() { [ "$(snapshot)" = "$snap" ]; }

for mode in error500 malformed truncated hang acl_filtered refuse close_mid_body; do
    step "fault: $mode"
    consul_fault "$mode"
    # The fault is real: the same read now fails or answers differently.
    body=$(consul_get /v1/health/service/rabbitmq 2>/dev/null)
    rc=$?
    if [ "$rc" -eq 0 ] && [ "$body" = "$normal" ]; then
        fail "fault $mode did not change the stand-in's answer"
    fi
    log "a read under $mode: exit $rc, $(echo "$body" | wc -c) bytes"
    hold unchanged 3 "the table stands through $mode"
    daemon_running || fail "the daemon died during fault $mode"
    consul_fault none
done
expect_session_alive s1

step "Consul answers again: the daemon follows it (b2 deregistered -> weight 0)"
consul_deregister b2
wait_weight tcp "$V" "$D2" 0 8
expect_weight tcp "$V" "$D1" 1
ipvsadm -Ln
