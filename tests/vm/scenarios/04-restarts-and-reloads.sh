#!/bin/sh
# 4. Restarts and reloads: SIGTERM (exit 0), SIGKILL and SIGHUP, repeated,
# change nothing in the table and every session survives; a restart during a
# drain adopts the weight-0 dest without raising or deleting it early.
. /lab/lib.sh

step "world: b1 and b2 registered, sessions open on both"
rabbitmq_up
session_open_on s1 b1
session_open_on s2 b2
snap=$(snapshot)
echo "$snap"

unchanged() { [ "$(snapshot)" = "$snap" ]; }

# The daemon's log lines since line $1 that report a kernel change: a
# restart on an unchanged world must make none (even one reverted within a
# probe interval, which a snapshot could miss).
changes_since() {
    tail -n "+$(($1 + 1))" "$T/daemon.log" | grep -E 'weight [0-9]+ -> [0-9]+|forward [a-z]+ -> |settings .* -> |added|deleted' || true
}
expect_no_writes_since() {
    _c=$(changes_since "$1")
    [ -z "$_c" ] || fail "the daemon changed the kernel after $2: $_c"
    log "ok: no kernel change logged after $2"
}

round=1
while [ "$round" -le 2 ]; do
    step "round $round: SIGTERM exits 0 and leaves the table as it was"
    daemon_stop TERM || fail "SIGTERM should exit 0"
    expect_snapshot "$snap" "SIGTERM changed the table"
    mark=$(wc -l <"$T/daemon.log")
    daemon_start
    hold unchanged 3 "the restarted daemon adopts the table without a write"
    expect_no_writes_since "$mark" "a restart (SIGTERM)"

    step "round $round: SIGKILL, restart"
    daemon_stop KILL || true
    expect_snapshot "$snap" "SIGKILL changed the table"
    mark=$(wc -l <"$T/daemon.log")
    daemon_start
    hold unchanged 3 "the restarted daemon adopts the table without a write"
    expect_no_writes_since "$mark" "a restart (SIGKILL)"

    step "round $round: SIGHUP reloads the same config"
    mark=$(wc -l <"$T/daemon.log")
    kill -HUP "$(daemon_pid)"
    hold unchanged 3 "reload changed nothing"
    expect_no_writes_since "$mark" "a reload (SIGHUP)"
    daemon_running || fail "the daemon died on SIGHUP"
    expect_session_alive s1
    expect_session_alive s2
    round=$((round + 1))
done

step "a restart during a drain keeps the draining dest at 0 until its session ends"
consul_deregister b2
wait_weight tcp "$V" "$D2" 0 5
daemon_stop TERM || fail "SIGTERM should exit 0"
daemon_start
hold "has_weight tcp $V $D2 0" 3 "b2 stays at weight 0 and is not deleted while s2 is open"
expect_session_alive s2
session_close s2
wait_weight tcp "$V" "$D2" absent 30
expect_weight tcp "$V" "$D1" 1
expect_session_alive s1
ipvsadm -Ln
