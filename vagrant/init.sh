#!/bin/sh
# PID 1 of the lab VM (busybox sh). Mounts the pseudo file systems, loads the
# IPVS modules, runs /lab/main.sh with the arguments in /lab/args, prints
# "LAB-RESULT: <status>" for the host-side runner and powers off.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
hostname lab

while read -r mod opts; do
    # shellcheck disable=SC2086 # module options are separate words
    insmod "/lib/modules/$mod" $opts || echo "lab-init: insmod $mod failed"
done </lab/modules

ip link set lo up
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.ipv6.conf.all.forwarding=1
# Kernel messages stay off the console unless they are errors.
echo 3 >/proc/sys/kernel/printk

set --
while IFS= read -r arg; do set -- "$@" "$arg"; done </lab/args

cd /lab || exit 1
echo "LAB-BOOTED: $(cut -d' ' -f1 /proc/uptime)s after power-on"
sh /lab/main.sh "$@"
rc=$?
echo "LAB-RESULT: $rc"
sync
poweroff -f
