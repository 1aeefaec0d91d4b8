#!/bin/sh
# The deploy story `vagrant/lab demo` plays inside the VM: RabbitMQ-like
# backends behind an IPVS VIP managed by consul-ipvs, a long-lived session
# held through a drain, a crash and a daemon restart. Lines from the daemon's
# own log are shown as they happen, prefixed "consul-ipvs |".
. /lab/lib.sh

say() { echo; echo "### $*"; }
show_table() { echo; ipvsadm -Ln | sed 's/^/    /'; echo; }
pause() { sleep "${1:-1}"; }

say "The world: a client, three backends (b1 b2 b3 = 203.0.113.11-13), a VIP $VIP4:$PORT on this director"
net_setup 3
backend_start 1
backend_start 2
backend_start 3
consul_start
write_config <<EOF
{$FAST, "services": [$(rabbit_service)]}
EOF
echo "consul-ipvs config ($T/config.json):"
sed 's/^/    /' "$T/config.json"

say "b1 and b2 register in Consul as 'rabbitmq' (b2 with weight 2)"
consul_register b1 rabbitmq "$(b4 1)" "$PORT" 1
consul_register b2 rabbitmq "$(b4 2)" "$PORT" 2

say "consul-ipvs starts: it adds each backend at weight 0, probes it, then raises it"
: >"$T/daemon.log"
tail -f "$T/daemon.log" | while IFS= read -r line; do echo "  consul-ipvs | ${line#*] }"; done &
daemon_start
wait_weight tcp "$V" "$D1" 1 15 >/dev/null
wait_weight tcp "$V" "$D2" 2 15 >/dev/null
pause
show_table

say "Clients connect through the VIP: each answer names the backend that served it"
echo "    $(hits 6)"

say "A long-lived session (one line every 200 ms, each echo checked) opens on b1"
session_open_on amqp b1 >/dev/null
echo "    session 'amqp' is served by $(session_backend amqp)"

say "Deploy: b3 joins Consul; it starts at weight 0 and rises after 2 good probes"
consul_register b3 rabbitmq "$(b4 3)" "$PORT" 1
wait_weight tcp "$V" "$D3" 1 15 >/dev/null
pause
show_table

say "Maintenance on b1: it leaves Consul. Weight 0 at once; its session keeps going"
consul_deregister b1
wait_weight tcp "$V" "$D1" 0 10 >/dev/null
pause 2
show_table
expect_session_alive amqp
echo "    new connections now: $(hits 4)   (never b1)"

say "The session on b1 ends: with no connections left, b1 is deleted"
session_close amqp
wait_weight tcp "$V" "$D1" absent 30 >/dev/null
show_table

say "b2 crashes (its listener dies): 2 failed probes take it to weight 0, kept in the table"
session_open_on amqp2 b3 >/dev/null
echo "    a new long-lived session 'amqp2' is on $(session_backend amqp2)"
backend_stop 2 >/dev/null
wait_weight tcp "$V" "$D2" 0 10 >/dev/null
pause
show_table

say "consul-ipvs is restarted (SIGTERM, then started again): the kernel table is adopted as is"
before=$(snapshot)
daemon_stop TERM >/dev/null || fail "SIGTERM should exit 0"
echo "    daemon stopped; IPVS keeps balancing on its own:"
echo "    new connections: $(hits 3)"
daemon_start >/dev/null
pause 3
expect_snapshot "$before" "the restart changed the table"
echo "    table after the restart: identical, not one write"
expect_session_alive amqp2
show_table

say "b2 comes back: after 2 good probes it gets its weight 2 again"
backend_start 2 >/dev/null
wait_weight tcp "$V" "$D2" 2 10 >/dev/null
pause
show_table
session_close amqp2 >/dev/null

say "Done: sessions never broke, drains waited for them, restarts changed nothing."
