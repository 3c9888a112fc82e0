#!/usr/bin/env python3
"""The ClickHouse endpoint's own figures with 1, 2 and 4 concurrent clients (docs/clickhouse-adapter.md).

For each client count: `SELECT 1` round trips (p50/p99 latency, queries/s over all clients), then raw
inserts of ROWS-row TSV bodies into a MergeTree table (rows/s over all clients). Then `SELECT 1` from
one client while another runs 40 ms queries back to back (`SELECT sleep(0.04)`, the cost of the
pipeline benchmark's probe query): an endpoint that serialises statements makes every one wait. Each client is a thread
with its own keep-alive HTTP connection. Run it against the local adapter or any ClickHouse server:

    .services/venv/bin/python scripts/bench-clickhouse.py --url "$CLICKHOUSE_URL" [--seconds 5] [--clients 1,2,4]

The client runs in Python on the same machine: on 2 cores its own CPU is part of what is measured.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import threading
import time
import uuid
from urllib.parse import quote, urlsplit


class Client:
    def __init__(self, url: str):
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port or 8123, timeout=120)

    def run(self, query: str, body: bytes = b"") -> bytes:
        self.connection.request("POST", "/?query=" + quote(query), body=body)
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{query[:60]}: HTTP {response.status}: {data[:300]!r}")
        return data


def in_parallel(clients: int, seconds: float, work) -> list:
    """Runs work(client, deadline) -> list of samples in `clients` threads; all the samples."""
    results: list[list] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)

    def thread(index: int) -> None:
        try:
            client = Client(ARGS.url)
            start.wait()
            results[index] = work(client, time.perf_counter() + seconds)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [sample for samples in results for sample in samples]


def select_one(client: Client, deadline: float) -> list[float]:
    samples = []
    while time.perf_counter() < deadline:
        began = time.perf_counter()
        client.run("SELECT 1")
        samples.append(time.perf_counter() - began)
    return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    setup = Client(ARGS.url)
    database = f"bench_endpoint_{uuid.uuid4().hex[:8]}"
    setup.run(f"CREATE DATABASE {database}")
    setup.run(f"CREATE TABLE {database}.t (id UInt64, name String, amount Decimal(12, 2), at DateTime64(6)) "
              "ENGINE = MergeTree ORDER BY id")
    body = "".join(f"{i}\tname {i}\t{i % 1000}.25\t2024-05-06 07:08:09.123456\n" for i in range(ARGS.rows)).encode()
    insert = f"INSERT INTO {database}.t FORMAT TSV"
    print(f"endpoint {ARGS.url}: {setup.run('SELECT version()').decode().strip()}; {os.cpu_count()} cores; "
          f"{ARGS.seconds:g} s per measurement")
    try:
        for clients in ARGS.clients:
            latencies = in_parallel(clients, ARGS.seconds, select_one)
            print(f"{clients} client(s): SELECT 1 p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
                  f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, {len(latencies) / ARGS.seconds:.0f} queries/s")

            def inserts(client: Client, deadline: float) -> list[float]:
                done = []
                while time.perf_counter() < deadline:
                    began = time.perf_counter()
                    client.run(insert, body)
                    done.append(time.perf_counter() - began)
                return done

            began = time.perf_counter()
            durations = in_parallel(clients, ARGS.seconds, inserts)
            elapsed = time.perf_counter() - began
            print(f"{clients} client(s): insert {ARGS.rows}-row TSV bodies: {len(durations)} inserts, "
                  f"{len(durations) * ARGS.rows / elapsed:,.0f} rows/s, "
                  f"median {statistics.median(durations) * 1000:.0f} ms per insert")
        stop = threading.Event()

        def slow_queries() -> None:
            client = Client(ARGS.url)
            while not stop.is_set():
                client.run("SELECT sleep(0.04)")

        slow = threading.Thread(target=slow_queries)
        slow.start()
        try:
            time.sleep(0.2)
            latencies = in_parallel(1, ARGS.seconds, select_one)
        finally:
            stop.set()
            slow.join()
        print(f"1 client beside 40 ms queries: SELECT 1 p50 {percentile(latencies, 0.5) * 1000:.1f} ms, "
              f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms")
    finally:
        setup.run(f"DROP DATABASE {database}")
    return 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default=os.environ.get("CLICKHOUSE_URL", "http://127.0.0.1:18123"))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--clients", type=lambda text: [int(n) for n in text.split(",")], default=[1, 2, 4])
    return parser.parse_args(argv)


if __name__ == "__main__":
    ARGS = parse_args(sys.argv[1:])
    sys.exit(main())
