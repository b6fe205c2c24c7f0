#!/usr/bin/env bash
# Sends each file as one UDP datagram to 127.0.0.1:$PORT (bash /dev/udp) and prints
# "NAME STATUS..." with every status line that came back within 0.4 s, or "NAME none".
for f in "$@"; do
  exec 3<>/dev/udp/127.0.0.1/${PORT:-5060}
  cat "$f" >&3
  out=$(timeout 0.4 cat <&3 | tr -d '\r' | grep -a '^SIP/2.0 [0-9]' | awk '{print $2}' | tr '\n' ' ')
  exec 3>&-
  echo "$(basename "$f" .dat) ${out:-none}"
done
