#!/bin/sh
# 5. Consul faults: down (connection refused), HTTP 500, malformed JSON, a
# truncated body, a hung request, an ACL-filtered empty answer, a body cut
# mid-way, an oversized body, an index going backwards: the table stays as it
# was, while the daemon keeps polling; a daemon restarted while Consul is
# down changes nothing either. Afterwards it still follows Consul.
. /lab/lib.sh

step "world: b1 and b2 registered, the daemon running"
rabbitmq_up
session_open_on s1 b1
snap=$(snapshot)
normal=$(consul_get /v1/health/service/rabbitmq) || fail "reading the stand-in"
unchanged() { [ "$(snapshot)" = "$snap" ]; }
# Reads of the health endpoint in the stand-in's request log.
health_reads() {
    consul-standin req GET "$CONTROL/v1/_standin/requests?path_prefix=/v1/health/service/rabbitmq" \
        | grep -o '"path_and_query"' | wc -l
}

# Over 16 MiB: consul-ipvs caps a Consul answer at 16 MiB (src/consul/client.rs).
for mode in error500 malformed truncated hang acl_filtered refuse close_mid_body \
    oversized\&bytes=17000000 index_backwards; do
    step "fault: $mode"
    creq DELETE "$CONTROL/v1/_standin/requests"
    consul_fault "$mode"
    # A new index, so the faulty answer cannot be skipped as "unchanged"
    # (the daemon need not re-parse an answer whose X-Consul-Index it has seen).
    creq PUT "$CONTROL/v1/_standin/index/rabbitmq" || fail "bumping the index"
    # The fault is real: the same read now fails or answers differently.
    body=$(consul_get /v1/health/service/rabbitmq 2>/dev/null)
    rc=$?
    if [ "$rc" -eq 0 ] && [ "$body" = "$normal" ] && [ "$mode" != index_backwards ]; then
        fail "fault $mode did not change the stand-in's answer"
    fi
    log "a read under $mode: exit $rc, ${#body} bytes"
    hold unchanged 3 "the table stands through $mode"
    daemon_running || fail "the daemon died during fault $mode"
    # The daemon really asked during the fault (refused connections leave no trace).
    reads=$(health_reads)
    log "the daemon read the health endpoint $reads times during the fault (one of them ours)"
    [ "$mode" = refuse ] || [ "$reads" -ge 2 ] || fail "the daemon did not poll Consul during $mode"
    consul_fault none
    # Let the error streak end (a good answer resets the daemon's back-off),
    # so each fault is met by a daemon polling at its normal pace.
    creq DELETE "$CONTROL/v1/_standin/requests"
    wait_for '[ "$(health_reads)" -ge 2 ]' 15 "the daemon polls Consul again"
done
expect_session_alive s1

step "a restart while Consul is down: nothing changes until Consul answers"
consul_fault refuse
daemon_stop TERM || fail "SIGTERM should exit 0"
daemon_start
hold unchanged 3 "the table stands while the restarted daemon has no Consul answer"
consul_fault none
hold unchanged 2 "the table stands once Consul answers the same"
expect_session_alive s1

step "Consul answers again: the daemon follows it (b2 deregistered -> weight 0)"
consul_deregister b2
wait_weight tcp "$V" "$D2" 0 8
expect_weight tcp "$V" "$D1" 1
ipvsadm -Ln
