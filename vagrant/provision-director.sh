#!/usr/bin/env bash
# Director of the Vagrant lab: a Consul agent in dev mode, IPVS, consul-ipvs.
# Args: DIRECTOR_IP VIP. Runs as root inside the director VM.
set -euo pipefail
director_ip=$1
vip=$2

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq ipvsadm socat curl gpg jq >/dev/null

# Consul is not in Debian's archive; HashiCorp's own apt repository has it.
if ! command -v consul >/dev/null; then
    curl -fsSL https://apt.releases.hashicorp.com/gpg | gpg --dearmor -o /usr/share/keyrings/hashicorp.gpg
    echo "deb [signed-by=/usr/share/keyrings/hashicorp.gpg] https://apt.releases.hashicorp.com bookworm main" \
        >/etc/apt/sources.list.d/hashicorp.list
    apt-get update -qq
    apt-get install -y -qq consul >/dev/null
fi

cat >/etc/systemd/system/consul-dev.service <<UNIT
[Unit]
Description=Consul agent in dev mode (lab only: no persistence, no ACLs)
After=network-online.target
[Service]
ExecStart=/usr/bin/consul agent -dev -client 0.0.0.0 -bind ${director_ip}
Restart=on-failure
[Install]
WantedBy=multi-user.target
UNIT

modprobe ip_vs
modprobe ip_vs_wlc
echo ip_vs >/etc/modules-load.d/ip_vs.conf
sysctl -qw net.ipv4.ip_forward=1
ip addr replace "${vip}/32" dev lo

bin=/consul-ipvs/target/release/consul-ipvs
if [[ -x $bin ]]; then
    install -m 0755 "$bin" /usr/local/bin/consul-ipvs
else
    echo "!!! no $bin: run 'cargo build --release' on the host, then 'vagrant provision director'"
fi

mkdir -p /etc/consul-ipvs
cat >/etc/consul-ipvs/config.json <<JSON
{
  "consul": {"address": "http://127.0.0.1:8500", "interval_ms": 1000, "timeout_ms": 2000},
  "check": {"interval_ms": 1000, "timeout_ms": 500, "rise": 2, "fall": 2},
  "resync_interval_ms": 5000,
  "services": [
    {"name": "echo", "vip": "${vip}:5672", "protocol": "tcp", "scheduler": "wlc",
     "forward": "nat", "consul": {"service": "echo", "tags": []},
     "check": {"port": 5672}, "allowed_backends": ["192.168.56.0/24"]}
  ]
}
JSON

cat >/etc/systemd/system/consul-ipvs.service <<UNIT
[Unit]
Description=consul-ipvs (Vagrant lab)
After=consul-dev.service
[Service]
ExecStart=/usr/local/bin/consul-ipvs --config /etc/consul-ipvs/config.json
ExecReload=/bin/kill -HUP \$MAINPID
Environment=RUST_LOG=info
Restart=on-failure
[Install]
WantedBy=multi-user.target
UNIT

systemctl daemon-reload
systemctl enable --now consul-dev.service
if [[ -x /usr/local/bin/consul-ipvs ]]; then
    systemctl enable --now consul-ipvs.service
fi
echo "director ready: consul UI on ${director_ip}:8500, VIP ${vip}:5672"
