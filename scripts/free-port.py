#!/usr/bin/env python3
"""Prints a TCP port free on 127.0.0.1, below the kernel's ephemeral range.

A port the kernel hands out for `bind(("127.0.0.1", 0))` is in the ephemeral range, where the
kernel also picks the local ports of outgoing connections and of other `bind(0)` calls (the mock
broker's own listeners): by the time a test binds it again, one of those may have taken it. Below
that range only explicit binds land. Importable (`free_port()`) or run as a script.
"""

import random
import socket
import sys


def free_port() -> int:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
        ephemeral_low = int(ranges.read().split()[0])
    for port in random.sample(range(20000, ephemeral_low), 500):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("free-port: no free port found below the ephemeral range")


if __name__ == "__main__":
    print(free_port())
    sys.exit(0)
