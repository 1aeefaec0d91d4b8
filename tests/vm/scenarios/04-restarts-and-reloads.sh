#!/bin/sh
# 4. Restarts and reloads: SIGTERM (exit 0), SIGKILL and SIGHUP, repeated,
# change nothing in the table and every session survives; a restart during a
# drain adopts the weight-0 dest without raising or deleting it early.
. /lab/lib.sh

step "world: b1 and b2 registered, sessions open on both"
standard_world 2
write_config <<EOF2
{$FAST, "services": [$(rabbit_service)]}
EOF2
daemon_start
wait_weight tcp "$V" "$D1" 1 10
wait_weight tcp "$V" "$D2" 1 10
session_open_on s1 b1
session_open_on s2 b2
snap=$(snapshot)
echo "$snap"

unchanged() { [ "$(snapshot)" = "$snap" ]; }

round=1
while [ "$round" -le 2 ]; do
    step "round $round: SIGTERM exits 0 and leaves the table as it was"
    daemon_stop TERM || fail "SIGTERM should exit 0"
    expect_snapshot "$snap" "SIGTERM changed the table"
    daemon_start
    hold unchanged 3 "the restarted daemon adopts the table without a write"

    step "round $round: SIGKILL, restart"
    daemon_stop KILL || true
    expect_snapshot "$snap" "SIGKILL changed the table"
    daemon_start
    hold unchanged 3 "the restarted daemon adopts the table without a write"

    step "round $round: SIGHUP reloads the same config"
    kill -HUP "$(daemon_pid)"
    hold unchanged 3 "reload changed nothing"
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
