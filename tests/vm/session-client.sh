#!/bin/sh
# One long-lived session, run by socat with stdin/stdout on the TCP socket.
# Reads the backend's banner, then sends "ping N" every 200 ms and requires
# the same line back within 3 s. State goes to files in DIR (never stdout,
# which is the socket): backend, count, broken (why it broke), stop (asked to end).
d=$1
echo $$ >"$d/client.pid"
if ! read -r banner; then
    echo "no banner from the backend" >"$d/broken"
    exit 1
fi
echo "$banner" >"$d/backend"
i=0
while [ ! -f "$d/stop" ]; do
    i=$((i + 1))
    echo "ping $i"
    if ! read -r -t 3 reply; then
        echo "no echo for ping $i within 3s (connection reset or stalled)" >"$d/broken"
        exit 1
    fi
    if [ "$reply" != "ping $i" ]; then
        echo "ping $i answered with '$reply'" >"$d/broken"
        exit 1
    fi
    echo "$i" >"$d/count.new" && mv "$d/count.new" "$d/count"
    sleep 0.2
done
