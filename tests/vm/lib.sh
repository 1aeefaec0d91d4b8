# shellcheck shell=sh
# Helpers for scenarios inside the lab VM (busybox sh). Sourced, not run.
#
# The network: the director is the root namespace; "client" and "b1".."bN"
# are namespaces joined to it by veth pairs. IPVS runs in NAT mode on the
# director, so backends route back through it.
#
#   client 198.51.100.2, 2001:db8:c::2 --- dir-c  198.51.100.1, 2001:db8:c::1
#   VIPs on dummy0 in the director:  192.0.2.10, 2001:db8::10
#   bI 203.0.113.1I, 2001:db8:b::1I    --- dir-bI 203.0.113.1, 2001:db8:b::1
#
# Every address lives inside this VM; it has no network card to the outside.
# iproute2 is installed as "nsip" (busybox's own "ip" has no netns support).

VIP4=192.0.2.10
VIP6=2001:db8::10
PORT=5672
T=/tmp/lab
mkdir -p "$T"

# ------------------------------------------------------------- output --

now() { cut -d' ' -f1 /proc/uptime; }
log() { echo "[$(now)] $*"; }
step() { echo; echo "[$(now)] == $*"; }

# Print why, show the world, and fail the scenario.
fail() {
    echo "[$(now)] FAIL: $*"
    show_state
    exit 1
}

show_state() {
    echo "---- ipvsadm -Ln"
    ipvsadm -Ln 2>&1
    echo "---- ipvsadm -Lnc"
    ipvsadm -Lnc 2>&1 | head -n 30
    if [ -f "$T/daemon.pid" ]; then
        if daemon_running; then echo "---- consul-ipvs is running"; else echo "---- consul-ipvs is NOT running"; fi
    fi
    if [ -f "$T/daemon.log" ]; then
        echo "---- daemon log (last 40 lines)"
        tail -n 40 "$T/daemon.log"
    fi
    echo "----"
}

# wait_for 'COMMAND' SECONDS [what] ['NOW']: poll COMMAND every 0.2 s until
# it succeeds; fail the scenario when the deadline passes, saying what the
# command NOW prints (what was found instead).
wait_for() {
    _cond=$1 _secs=$2 _what=${3:-$1} _found=${4:-}
    _end=$(awk -v n="$(now)" -v s="$_secs" 'BEGIN{print n+s}')
    while ! eval "$_cond" >/dev/null 2>&1; do
        if awk -v n="$(now)" -v e="$_end" 'BEGIN{exit !(n>e)}'; then
            [ -n "$_found" ] && _what="$_what (found: $(eval "$_found"))"
            fail "not within ${_secs}s: $_what"
        fi
        sleep 0.2
    done
    log "ok: $_what"
}

# hold 'COMMAND' SECONDS [what]: COMMAND must keep succeeding the whole time.
hold() {
    _cond=$1 _secs=$2 _what=${3:-$1}
    _end=$(awk -v n="$(now)" -v s="$_secs" 'BEGIN{print n+s}')
    while awk -v n="$(now)" -v e="$_end" 'BEGIN{exit !(n<e)}'; do
        eval "$_cond" >/dev/null 2>&1 || fail "stopped holding: $_what"
        sleep 0.3
    done
    log "ok (held ${_secs}s): $_what"
}

# ------------------------------------------------------ ipvsadm views --

# One line per dest: "tcp 192.0.2.10:5672 203.0.113.11:5672 Masq 1 0 0",
# i.e. proto vip dest forward weight active inactive. IPv6 in brackets.
table() {
    ipvsadm -Ln | awk '
        /^(TCP|UDP|SCTP) / { proto = tolower($1); vip = $2; next }
        /^  -> / && $2 != "RemoteAddress:Port" { print proto, vip, $2, $3, $4, $5, $6 }'
}

# Services only: "tcp 192.0.2.10:5672 wlc".
services() {
    ipvsadm -Ln | awk '/^(TCP|UDP|SCTP) / { print tolower($1), $2, $3 }'
}

# weight_of PROTO VIP DEST -> weight, or nothing when the dest is absent.
weight_of() {
    table | awk -v p="$1" -v v="$2" -v d="$3" '$1==p && $2==v && $3==d { print $5 }'
}

# expect_weight PROTO VIP DEST WEIGHT (or "absent"): check now, no waiting.
has_weight() {
    _w=$(weight_of "$1" "$2" "$3")
    if [ "$4" = absent ]; then [ -z "$_w" ]; else [ "$_w" = "$4" ]; fi
}

expect_weight() {
    has_weight "$@" || fail "expected $1/$2 -> $3 weight $4, found '$(weight_of "$1" "$2" "$3")'"
}

wait_weight() {
    wait_for "has_weight $1 $2 $3 $4" "$5" "$1/$2 -> $3 weight $4" \
        "_w=\$(weight_of $1 $2 $3); echo \${_w:-absent}"
}

has_service() { services | awk -v p="$1" -v v="$2" '$1==p && $2==v {f=1} END {exit !f}'; }

# conns PROTO VIP DEST -> active+inactive connection count.
conns() {
    table | awk -v p="$1" -v v="$2" -v d="$3" '$1==p && $2==v && $3==d { print $6 + $7 }'
}

# Snapshot of the table without counters, for "nothing changed" checks.
snapshot() {
    ipvsadm -Ln | awk '/^  -> / && $2 != "RemoteAddress:Port" { print "  ", $2, $3, $4; next } { print }'
}

expect_snapshot() {
    _now=$(snapshot)
    if [ "$_now" != "$1" ]; then
        echo "---- expected table"; echo "$1"
        echo "---- found"; echo "$_now"
        fail "${2:-the table changed}"
    fi
}

# ------------------------------------------------------------ network --

ns() { _n=$1; shift; nsip netns exec "$_n" "$@"; }

# must COMMAND...: a set-up step that has to work.
must() { "$@" || fail "set-up step failed: $*"; }

# ns_bg NS PIDFILE COMMAND...: run COMMAND in NS in the background, with its
# own pid in PIDFILE ("ip netns exec" forks and does not pass signals on, so
# $! would be the wrong process to kill).
ns_bg() {
    _n=$1 _pf=$2
    shift 2
    rm -f "$_pf"
    # shellcheck disable=SC2016 # expanded by the inner shell
    nsip netns exec "$_n" sh -c 'echo $$ >"$0"; exec "$@"' "$_pf" "$@" &
    _k=0
    while [ ! -s "$_pf" ] && [ "$_k" -lt 50 ]; do sleep 0.1; _k=$((_k + 1)); done
}

net_setup() {
    _nb=${1:-2}
    must nsip link add dummy0 type dummy
    must nsip link set dummy0 up
    must nsip addr add "$VIP4/32" dev dummy0
    must nsip -6 addr add "$VIP6/128" dev dummy0 nodad
    must nsip netns add client
    must nsip link add dir-c type veth peer name eth0 netns client
    must nsip addr add 198.51.100.1/24 dev dir-c
    must nsip -6 addr add 2001:db8:c::1/64 dev dir-c nodad
    must nsip link set dir-c up
    must ns client nsip link set lo up
    must ns client nsip addr add 198.51.100.2/24 dev eth0
    must ns client nsip -6 addr add 2001:db8:c::2/64 dev eth0 nodad
    must ns client nsip link set eth0 up
    must ns client nsip route add default via 198.51.100.1
    must ns client nsip -6 route add default via 2001:db8:c::1
    _i=1
    while [ "$_i" -le "$_nb" ]; do backend_ns "$_i"; _i=$((_i + 1)); done
    # FIN_WAIT short, so a drained dest's inactive entries expire in seconds.
    ipvsadm --set 900 5 60
}

# backend_ns I: namespace bI with 203.0.113.1I and 2001:db8:b::1I.
backend_ns() {
    _b=b$1
    must nsip netns add "$_b"
    must nsip link add "dir-$_b" type veth peer name eth0 netns "$_b"
    must nsip addr add 203.0.113.1/32 dev "dir-$_b"
    must nsip -6 addr add 2001:db8:b::1/128 dev "dir-$_b" nodad
    must nsip link set "dir-$_b" up
    must nsip route add "203.0.113.1$1/32" dev "dir-$_b"
    must nsip -6 route add "2001:db8:b::1$1/128" dev "dir-$_b"
    must ns "$_b" nsip link set lo up
    must ns "$_b" nsip addr add "203.0.113.1$1/24" dev eth0
    must ns "$_b" nsip -6 addr add "2001:db8:b::1$1/64" dev eth0 nodad
    must ns "$_b" nsip link set eth0 up
    must ns "$_b" nsip route add default via 203.0.113.1
    must ns "$_b" nsip -6 route add default via 2001:db8:b::1
}

b4() { echo "203.0.113.1$1"; }
b6() { echo "2001:db8:b::1$1"; }

# ----------------------------------------------------------- backends --

# backend_start I [PORT]: TCP (v4 and v6) server in bI that sends "bI" then
# echoes. Forked children keep serving open sessions after backend_stop.
backend_start() {
    _p=${2:-$PORT}
    ns_bg "b$1" "$T/b$1-$_p.pid" \
        socat -d -d "TCP6-LISTEN:$_p,ipv6only=0,fork,reuseaddr" SYSTEM:"echo b$1; exec cat" \
        >>"$T/b$1-$_p.log" 2>&1
    wait_for "ns b$1 netstat -ltn | grep -q ':$_p '" 10 "b$1 listening on $_p"
}

# accepted I [PORT]: connections bI's listener has accepted so far (probes
# included: the daemon probes backends directly, not through the VIP).
accepted() { grep -c 'accepting connection' "$T/b$1-${2:-$PORT}.log" 2>/dev/null || true; }

# backend_stop I [PORT]: kill the listener only; open sessions stay up.
backend_stop() {
    _p=${2:-$PORT}
    _pid=$(cat "$T/b$1-$_p.pid")
    kill "$_pid" 2>/dev/null
    wait_for "! kill -0 $_pid" 5 "b$1 listener on $_p gone"
    rm -f "$T/b$1-$_p.pid"
    log "b$1 listener on $_p stopped"
}

# udp_backend_start I PORT: answers every datagram with "bI".
udp_backend_start() {
    ns_bg "b$1" "$T/b$1-udp$2.pid" \
        socat "UDP6-RECVFROM:$2,ipv6only=0,fork,reuseaddr" SYSTEM:"echo b$1" \
        >>"$T/b$1-udp$2.log" 2>&1
}

# ------------------------------------------------------------- client --

# Test clients end their connections with a RST (linger=0, no FIN first):
# IPVS then holds the entry in CLOSE for 10 s instead of TIME_WAIT for 120 s
# (TIME_WAIT is not settable with ipvsadm --set), so a drained dest reaches
# zero connections within seconds. CLIENT_OPTS is appended to every connect.
CLIENT_OPTS=connect-timeout=3,linger=0,shut-none

# hit [VIP] [PORT]: one new connection from the client; prints the banner
# (the backend's name) or "none". socat only reads (-u), and is killed once
# the banner is in, so the connection ends with a RST, never a FIN.
hit() {
    _v=${1:-$VIP4} _p=${2:-$PORT} _f=$T/hit
    case $_v in *:*) _v="[$_v]" ;; esac
    : >"$_f"
    ns_bg client "$_f.pid" socat -u "TCP:$_v:$_p,$CLIENT_OPTS" "OPEN:$_f,append" 2>/dev/null
    _k=0
    while [ ! -s "$_f" ] && [ "$_k" -lt 30 ] && kill -0 "$(cat "$_f.pid")" 2>/dev/null; do
        sleep 0.1; _k=$((_k + 1))
    done
    kill -9 "$(cat "$_f.pid")" 2>/dev/null
    _r=$(head -n1 "$_f")
    echo "${_r:-none}"
}

# hits N [VIP] [PORT]: N new connections; prints the banners, space-separated.
hits() {
    _k=0 _out=
    while [ "$_k" -lt "$1" ]; do _out="$_out $(hit "$2" "$3")"; _k=$((_k + 1)); done
    echo "$_out"
}

# count WORD "LIST": how often WORD appears in LIST.
count() { echo "$2" | tr ' ' '\n' | grep -cx "$1"; }

udp_hit() {
    _v=$1 _p=$2
    case $_v in *:*) _v="[$_v]" ;; esac
    _r=$(echo ping | ns client socat -T2 - "UDP:$_v:$_p" 2>/dev/null | head -n1)
    echo "${_r:-none}"
}

# ----------------------------------------------------------- sessions --

# session_open NAME [VIP] [PORT]: one long-lived TCP session from the client
# that sends a line every 200 ms and checks each echo (session-client.sh).
session_open() {
    _d=$T/sess-$1 _v=${2:-$VIP4} _p=${3:-$PORT}
    case $_v in *:*) _v="[$_v]" ;; esac
    rm -rf "$_d"; mkdir -p "$_d"
    ns_bg client "$_d/pid" \
        socat "TCP:$_v:$_p,$CLIENT_OPTS" SYSTEM:"sh /lab/session-client.sh $_d" \
        2>"$_d/socat.err"
    wait_for "[ -s $_d/count ]" 10 "session $1 open"
    log "session $1 is served by $(session_backend "$1")"
}

session_backend() { cat "$T/sess-$1/backend"; }

# session_alive NAME: not broken, and its echo count moves on.
session_alive() {
    _d=$T/sess-$1
    [ ! -f "$_d/broken" ] || return 1
    _c1=$(cat "$_d/count")
    sleep 0.7
    _c2=$(cat "$_d/count")
    [ ! -f "$_d/broken" ] && [ "$_c2" -gt "$_c1" ]
}

expect_session_alive() {
    session_alive "$1" || fail "session $1 broke: $(cat "$T/sess-$1/broken" 2>/dev/null || echo "its echoes stopped")"
    log "ok: session $1 alive ($(cat "$T/sess-$1/count") echoes)"
}

# session_close NAME: kill the client's socat, so the kernel ends the
# connection with a RST (see CLIENT_OPTS on why; a graceful exit of socat
# with a SYSTEM peer was seen to send a FIN and leave TIME_WAIT behind).
# The session's folder is moved aside so the name can be used again.
session_close() {
    _d=$T/sess-$1
    [ ! -f "$_d/broken" ] || fail "session $1 broke before its end: $(cat "$_d/broken")"
    session_kill "$1"
    log "session $1 closed"
}

session_kill() {
    _d=$T/sess-$1
    touch "$_d/stop"
    kill -9 "$(cat "$_d/pid")" 2>/dev/null
    kill -9 "$(cat "$_d/client.pid")" 2>/dev/null
    wait_for "! kill -0 $(cat "$_d/pid") 2>/dev/null" 10 "session $1 ended" >/dev/null
    mv "$_d" "$_d.closed.$(now)"
}

# session_open_on NAME bI [VIP] [PORT]: open sessions until one is served by
# bI (the scheduler decides; wlc sends a new one to the dest with fewest).
session_open_on() {
    _tries=0
    while :; do
        session_open "$1" "$3" "$4"
        [ "$(session_backend "$1")" = "$2" ] && return 0
        _tries=$((_tries + 1))
        [ "$_tries" -lt 6 ] || fail "could not get a session on $2"
        session_kill "$1"
    done
}

# ------------------------------------------------------------- consul --

CONSUL=http://127.0.0.1:8500
# The stand-in's control listener: /v1/_standin/* only, never faulted, so a
# "refuse" fault on 8500 can be cleared.
CONTROL=http://127.0.0.1:8501

consul_start() {
    consul-standin serve --listen 127.0.0.1:8500 --control 127.0.0.1:8501 >>"$T/standin.log" 2>&1 &
    echo $! >"$T/standin.pid"
    wait_for "netstat -ltn | grep -q '127.0.0.1:8500 '" 10 "Consul stand-in listening"
}

consul_stop() {
    kill "$(cat "$T/standin.pid")" 2>/dev/null
    wait "$(cat "$T/standin.pid")" 2>/dev/null
    log "Consul stand-in stopped"
}

creq() { consul-standin req --timeout-ms 3000 "$@" >>"$T/standin-req.log" 2>&1; }

# consul_get PATH: the stand-in's answer to a read, on stdout.
consul_get() { consul-standin req --timeout-ms 3000 GET "$CONSUL$1"; }

# consul_register ID SERVICE ADDRESS PORT [WEIGHT] [TAGS as JSON list]
consul_register() {
    creq PUT "$CONSUL/v1/agent/service/register" \
        "{\"ID\":\"$1\",\"Name\":\"$2\",\"Address\":\"$3\",\"Port\":$4,\"Tags\":${6:-[\"amqp\"]},\"Weights\":{\"Passing\":${5:-1},\"Warning\":1}}" \
        || fail "registering $1 in the stand-in"
    log "consul: registered $1 ($2 at $3:$4, weight ${5:-1})"
}

consul_deregister() {
    creq PUT "$CONSUL/v1/agent/service/deregister/$1" || fail "deregistering $1"
    log "consul: deregistered $1"
}

consul_maintenance() {
    creq PUT "$CONSUL/v1/agent/service/maintenance/$1?enable=$2&reason=lab" || fail "maintenance $1 $2"
    log "consul: maintenance $1 $2"
}

# consul_fault MODE: none, refuse, error500, malformed, truncated, hang,
# acl_filtered, close_mid_body, ... (tests/consul-standin/src/fault.rs)
consul_fault() {
    creq PUT "$CONTROL/v1/_standin/fault?mode=$1" || fail "setting stand-in fault $1"
    log "consul: fault mode $1"
}

# ------------------------------------------------------------- daemon --

# write_config < JSON: the daemon's config file.
write_config() { cat >"$T/config.json"; }

# shellcheck disable=SC2034 # FAST, V, D1.. are for the scenarios
# Global settings with fast timers, for scenario configs:
#   {$FAST, "services": [...]}
FAST='"consul":{"address":"http://127.0.0.1:8500","interval_ms":300,"timeout_ms":1000},
 "check":{"interval_ms":300,"timeout_ms":500,"rise":2,"fall":2},
 "resync_interval_ms":2000'

# rabbit_service [EXTRA-JSON-FIELDS]: the Consul-fed TCP service on VIP4:5672.
rabbit_service() {
    cat <<EOF
{"name":"rabbitmq","vip":"$VIP4:$PORT","protocol":"tcp","scheduler":"wlc","forward":"nat",
 "consul":{"service":"rabbitmq","tags":["amqp"]},
 "check":{"port":$PORT},"allowed_backends":["203.0.113.0/24"]${1:-}}
EOF
}

# standard_world N: N backends listening on 5672, the stand-in running with
# b1..bN registered as "rabbitmq" (tag amqp, weight 1).
standard_world() {
    net_setup "$1"
    _i=1
    while [ "$_i" -le "$1" ]; do backend_start "$_i"; _i=$((_i + 1)); done
    consul_start
    _i=1
    while [ "$_i" -le "$1" ]; do consul_register "b$_i" rabbitmq "$(b4 "$_i")" "$PORT"; _i=$((_i + 1)); done
}

# The common start of a scenario: b1 and b2 registered as rabbitmq, the
# daemon running with the fast settings, both dests up at weight 1.
# shellcheck disable=SC2119 # rabbit_service's defaults are the point here
rabbitmq_up() {
    standard_world 2
    write_config <<EOF2
{$FAST, "services": [$(rabbit_service)]}
EOF2
    daemon_start
    wait_weight tcp "$V" "$D1" 1 10
    wait_weight tcp "$V" "$D2" 1 10
}

# The dest names of VIP4:5672's backends, for wait_weight and friends.
# shellcheck disable=SC2034
V=$VIP4:$PORT D1=203.0.113.11:$PORT D2=203.0.113.12:$PORT D3=203.0.113.13:$PORT

daemon_start() {
    RUST_LOG=${RUST_LOG:-info} consul-ipvs --config "$T/config.json" "$@" >>"$T/daemon.log" 2>&1 &
    echo $! >"$T/daemon.pid"
    log "consul-ipvs started (pid $(cat "$T/daemon.pid"))"
}

daemon_pid() { cat "$T/daemon.pid"; }

daemon_running() { kill -0 "$(daemon_pid)" 2>/dev/null; }

# daemon_signal SIG: send it; for TERM/INT/KILL wait for the exit and
# return the exit status.
daemon_stop() {
    _sig=${1:-TERM}
    kill "-$_sig" "$(daemon_pid)" || fail "daemon not running to receive SIG$_sig"
    wait "$(daemon_pid)"
    _rc=$?
    log "consul-ipvs got SIG$_sig and exited with $_rc"
    return "$_rc"
}

daemon_log_has() { grep -q -- "$1" "$T/daemon.log"; }

# ------------------------------------------------------------ cleanup --

# Reset the VM between scenarios of one boot: processes, namespaces, links,
# IPVS. A namespace is torn down asynchronously after "netns del", and its
# veth peer with it, so the director's ends are deleted here and waited for:
# the next scenario re-creates links of the same names.
lab_reset() {
    for _f in "$T"/*.pid "$T"/sess-*/pid "$T"/sess-*/client.pid; do
        [ -f "$_f" ] && kill -9 "$(cat "$_f")" 2>/dev/null
    done
    # Anything a scenario started and did not record (this VM is ours alone).
    for _p in $(pidof consul-ipvs consul-standin socat); do kill -9 "$_p" 2>/dev/null; done
    for _n in $(nsip netns list 2>/dev/null | awk '{print $1}'); do
        nsip netns pids "$_n" 2>/dev/null | xargs -r kill -9 2>/dev/null
        nsip netns del "$_n"
    done
    for _l in $(lab_links); do nsip link del "$_l" 2>/dev/null; done
    _k=0
    while [ -n "$(lab_links)" ] && [ "$_k" -lt 50 ]; do sleep 0.1; _k=$((_k + 1)); done
    [ -z "$(lab_links)" ] || echo "lab_reset: links left over: $(lab_links)"
    ipvsadm -C
    rm -rf "$T"
    mkdir -p "$T"
}

# The director's links the scenarios create (dummy0, dir-c, dir-bI).
lab_links() {
    nsip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | grep -E '^(dummy0|dir-)' || true
}
