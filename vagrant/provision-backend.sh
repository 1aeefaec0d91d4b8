#!/usr/bin/env bash
# Backend of the Vagrant lab: an echo service on 5672 that says its name,
# registered with the director's Consul agent. Args: NAME IP DIRECTOR_IP.
set -euo pipefail
name=$1
ip=$2
director_ip=$3

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq socat curl >/dev/null

cat >/etc/systemd/system/lab-echo.service <<UNIT
[Unit]
Description=Lab echo service on 5672 (greets with its name, then echoes)
[Service]
ExecStart=/usr/bin/socat TCP-LISTEN:5672,fork,reuseaddr SYSTEM:"echo ${name}; exec cat"
Restart=on-failure
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now lab-echo.service

# NAT mode needs replies to pass the director: the lab's client is the
# director itself, so they do without touching this VM's default route
# (which carries vagrant ssh).

# Register with Consul on the director (retry while its agent starts).
for _ in $(seq 30); do
    if curl -fsS -X PUT "http://${director_ip}:8500/v1/agent/service/register" \
        -d "{\"ID\":\"${name}\",\"Name\":\"echo\",\"Address\":\"${ip}\",\"Port\":5672,
             \"Check\":{\"TCP\":\"${ip}:5672\",\"Interval\":\"2s\"}}"; then
        echo "${name} registered as echo at ${ip}:5672"
        exit 0
    fi
    sleep 2
done
echo "!!! could not reach Consul on ${director_ip}:8500" >&2
exit 1
