#!/bin/sh
# 8. Static backends with no Consul at all (nothing listens on 8500): the
# service is programmed from the config, probes drive the weights, and a
# backend removed from the list by a reload is drained and deleted.
. /lab/lib.sh

step "world: b1, b2 listening on 3306; no Consul anywhere"
net_setup 2
backend_start 1 3306
backend_start 2 3306
VS=$VIP4:3306
S1=$(b4 1):3306
S2=$(b4 2):3306
cfg() {
    cat <<EOF2
{"check":{"interval_ms":300,"timeout_ms":500,"rise":2,"fall":2},"resync_interval_ms":2000,
 "state_file":"/tmp/consul-ipvs-state.json",
 "services":[{"name":"mysql","vip":"$VS","protocol":"tcp","scheduler":"wrr","forward":"nat",
   "backends":[$1],"check":{"port":3306}}]}
EOF2
}
cfg "\"$S1\",{\"address\":\"$S2\",\"weight\":3}" | write_config
netstat -ltn | grep -q ':8500 ' && fail "something listens on 8500; this scenario needs no Consul"
daemon_start

step "the service comes up from the static list"
wait_weight tcp "$VS" "$S1" 1 10
wait_weight tcp "$VS" "$S2" 3 10
services | grep -qxF "tcp $VS wrr" || fail "scheduler should be wrr"
h=$(hits 8 "$VIP4" 3306)
log "banners:$h"
[ "$(count b1 "$h")" -ge 1 ] && [ "$(count b2 "$h")" -ge 1 ] || fail "both backends should get connections: $h"

# The state file: keys come out sorted, so one backend is one run of text.
state() { tr -d ' \n' < /tmp/consul-ipvs-state.json; }
state_has() { state | grep -qF "\"address\":\"$1\",\"desired_weight\":$2,\"draining_for_s\":null,\"inactive_conns\":"; }
step "the state file shows each backend's weights and probe health"
wait_for "state_has $S2 3" 5 "state file: $S2 desired weight 3" "state"
state | grep -qF "\"kernel_weight\":3,\"probe\":\"up\",\"source_status\":\"passing\"" || fail "state file: $(state)"

step "b2's listener dies: weight 0 after fall; back to 3 after rise"
backend_stop 2 3306
wait_weight tcp "$VS" "$S2" 0 8
wait_for "state_has $S2 0" 5 "state file: $S2 desired weight 0" "state"
state | grep -qF "\"kernel_weight\":0,\"probe\":\"down\"" || fail "state file: $(state)"
backend_start 2 3306
wait_weight tcp "$VS" "$S2" 3 8

step "b1 removed from the list by a reload: drained, then deleted (no sessions)"
cfg "{\"address\":\"$S2\",\"weight\":3}" | write_config
kill -HUP "$(daemon_pid)"
wait_weight tcp "$VS" "$S1" absent 15
expect_weight tcp "$VS" "$S2" 3
daemon_running || fail "the daemon died"
ipvsadm -Ln
