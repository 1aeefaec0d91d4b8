#!/bin/sh
# 9. A reload that removes a service drains it (weight 0, no new connections,
# the open session keeps working) and deletes it once its sessions end; the
# other service is untouched. An invalid config on reload is refused and the
# old one kept.
. /lab/lib.sh

step "world: rabbitmq from Consul on $V, mysql static on 192.0.2.11:3306"
standard_world 2
nsip addr add 192.0.2.11/32 dev dummy0
backend_start 1 3306
backend_start 2 3306
VS=192.0.2.11:3306
S1=$(b4 1):3306
S2=$(b4 2):3306
mysql='{"name":"mysql","vip":"'$VS'","protocol":"tcp","scheduler":"wlc","forward":"nat",
 "backends":["'$S1'","'$S2'"],"check":{"port":3306}}'
write_config <<EOF2
{$FAST, "services": [$(rabbit_service), $mysql]}
EOF2
daemon_start
wait_weight tcp "$V" "$D1" 1 10
wait_weight tcp "$V" "$D2" 1 10
wait_weight tcp "$VS" "$S1" 1 10
wait_weight tcp "$VS" "$S2" 1 10
session_open_on m1 b1 192.0.2.11 3306
rabbit() { ipvsadm -Ln -t "$V" | awk '/->/ {print $1, $2, $3, $4; next} {print}'; }
rsnap=$(rabbit)

step "an invalid config on SIGHUP is refused: the daemon runs on with the old one"
cp "$T/config.json" "$T/config.good"
echo '{"services": [ this is not json' >"$T/config.json"
kill -HUP "$(daemon_pid)"
hold "daemon_running && has_weight tcp $VS $S1 1 && has_weight tcp $V $D1 1" 3 "old config still in force"
cp "$T/config.good" "$T/config.json"

step "reload without mysql: its dests go to weight 0; the session keeps working"
write_config <<EOF2
{$FAST, "services": [$(rabbit_service)]}
EOF2
kill -HUP "$(daemon_pid)"
wait_weight tcp "$VS" "$S1" 0 8
wait_for "has_weight tcp $VS $S2 0 || has_weight tcp $VS $S2 absent" 8 "b2 of mysql drained or gone"
h=$(hits 3 192.0.2.11 3306)
log "banners:$h"
[ "$(count b1 "$h")" -eq 0 ] && [ "$(count b2 "$h")" -eq 0 ] || fail "the removed service still takes new connections: $h"
hold "has_service tcp $VS && has_weight tcp $VS $S1 0" 3 "mysql kept, b1 at weight 0, while session m1 is open"
expect_session_alive m1

step "the session ends: the service is deleted"
session_close m1
wait_for "! has_service tcp $VS" 30 "service tcp/$VS deleted"
[ "$(rabbit)" = "$rsnap" ] || fail "rabbitmq changed: $(rabbit)"
log "ok: rabbitmq untouched"
daemon_running || fail "the daemon died"
ipvsadm -Ln
