#!/bin/sh
# The lab itself, without the daemon: ipvsadm by hand proves the data path and
# the helpers, including that a drained dest keeps its session and that the
# helpers do notice a broken session.
. /lab/lib.sh

step "network: client, two backends, VIP $VIP4 in NAT mode"
net_setup 2
backend_start 1
backend_start 2
ipvsadm -A -t "$VIP4:$PORT" -s rr
ipvsadm -a -t "$VIP4:$PORT" -r "$(b4 1):$PORT" -m -w 1
ipvsadm -a -t "$VIP4:$PORT" -r "$(b4 2):$PORT" -m -w 1
ipvsadm -Ln

step "new connections reach both backends"
h=$(hits 6)
log "banners:$h"
[ "$(count b1 "$h")" -ge 1 ] && [ "$(count b2 "$h")" -ge 1 ] || fail "rr should reach b1 and b2: $h"

step "a session to b1 survives its dest going to weight 0"
session_open_on s1 b1
ipvsadm -e -t "$VIP4:$PORT" -r "$(b4 1):$PORT" -m -w 0
h=$(hits 4)
log "banners after drain:$h"
[ "$(count b1 "$h")" -eq 0 ] || fail "drained b1 got new connections: $h"
expect_session_alive s1
expect_weight tcp "$VIP4:$PORT" "$(b4 1):$PORT" 0

step "the session ends; b1's connection count drops to 0"
session_close s1
wait_for '[ "$(conns tcp $VIP4:$PORT $(b4 1):$PORT)" = 0 ]' 20 "b1 has no connections"

step "a reset session is seen as broken (the helpers can fail)"
session_open s2
b=$(session_backend s2)
n=${b#b}
ns "$b" sh -c 'for p in $(pidof socat); do kill -9 $p; done'
sleep 4
if session_alive s2; then fail "killing $b's server did not register as a broken session"; fi
log "ok: broken session detected: $(cat "$T"/sess-s2.closed.*/broken "$T"/sess-s2/broken 2>/dev/null)"
backend_start "$n"

step "IPv6 VIP, NAT"
ipvsadm -A -t "[$VIP6]:$PORT" -s rr
ipvsadm -a -t "[$VIP6]:$PORT" -r "[$(b6 2)]:$PORT" -m -w 1
[ "$(hit "$VIP6")" = b2 ] || fail "IPv6 VIP did not reach b2"
log "ok: IPv6 VIP reaches b2"
ipvsadm -Ln
