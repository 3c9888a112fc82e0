//! At-least-once and slot hygiene against a real Postgres and broker: a capture killed with SIGKILL
//! mid-stream, or stopped with SIGTERM as a paused pipeline's is, loses nothing after a restart
//! (the resume) and keeps per-key order; heartbeats make an idle slot
//! confirm new positions and reach every partition of an idle table's topic as `heartbeat`
//! envelopes; the metrics endpoint reports the retained WAL and the last commit time sent.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cdcstar_testkit::free_port;
use common::{
    Capture, PipelineFile, TopicReader, scratch_db, slot_confirmed_lsn, start_streaming,
    version_of, wait_for_active_slot,
};

const KEYS: i32 = 20;
const WRITES: i32 = 900;

/// How the capture is stopped a third of the way through the writes.
#[derive(Clone, Copy)]
enum Stop {
    /// SIGKILL: a crash, nothing flushed or confirmed.
    Kill,
    /// SIGTERM, as a pipeline paused with `spec.state: paused` (its Deployment scaled to zero):
    /// the capture flushes, confirms and exits 0.
    Pause,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_loses_nothing_and_keeps_per_key_order() {
    stop_mid_stream_then_restart(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_mid_stream_then_resumed_loses_nothing_and_keeps_per_key_order() {
    stop_mid_stream_then_restart(Stop::Pause).await;
}

/// Writes while the capture stops a third of the way through and restarts two thirds of the way
/// through; every write arrives, in per-key order.
async fn stop_mid_stream_then_restart(stop: Stop) {
    let (db, sql) = scratch_db(
        "capture_restart",
        &["CREATE TABLE counter (id int4 PRIMARY KEY, n int4 NOT NULL)"],
    )
    .await;
    let (_dir, prefix, pipeline, capture) =
        start_streaming(&db, &sql, "restart", &["counter"]).await;

    // Write n = 1, 2, 3... round-robin over the keys; kill the capture a third of the way through,
    // keep writing while it is down, restart it two thirds of the way through.
    let mut capture = Some(capture);
    for write in 1..=WRITES {
        let key = write % KEYS;
        sql.execute(
            "INSERT INTO counter VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n",
            &[&key, &write],
        )
        .await
        .unwrap();
        if write == WRITES / 3 {
            let running = capture.take().expect("running");
            match stop {
                Stop::Kill => running.kill(),
                Stop::Pause => assert!(running.terminate(), "a paused capture exits 0"),
            }
        }
        if write == 2 * WRITES / 3 {
            let mut restarted = Capture::start(&pipeline, &db.url, &[]);
            wait_for_active_slot(&sql, &mut restarted).await;
            capture = Some(restarted);
        }
        if write % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let mut reader = TopicReader::new(&format!("{prefix}.counter"));
    let expected: HashSet<(String, i64)> = (1..=WRITES)
        .map(|write| ((write % KEYS).to_string(), i64::from(write)))
        .collect();
    reader.read_until(Duration::from_secs(120), |events| {
        let seen: HashSet<(String, i64)> = events
            .iter()
            .map(|e| {
                (
                    e.key.clone().unwrap(),
                    e.json["payload"]["n"].as_i64().unwrap(),
                )
            })
            .collect();
        expected.is_subset(&seen)
    });

    // Per key, first occurrences come in write order (replays after the restart are duplicates
    // of a suffix, never a reordering).
    let mut first_seen: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for event in &reader.events {
        let key = event.key.clone().unwrap();
        let n = event.json["payload"]["n"].as_i64().unwrap();
        assert_eq!(
            event.json["payload"]["id"].to_string(),
            key,
            "keyed by primary key"
        );
        if seen.insert((key.clone(), n)) {
            first_seen.entry(key).or_default().push(n);
        }
    }
    for (key, values) in &first_seen {
        assert!(
            values.windows(2).all(|pair| pair[0] < pair[1]),
            "key {key} out of order: {values:?}"
        );
    }
    let duplicates = reader.events.len() - seen.len();
    eprintln!(
        "{} events, {duplicates} replayed after the restart",
        reader.events.len()
    );

    assert!(capture.take().expect("running").terminate());
    db.drop_all().await;
}

fn http_get(port: u16, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_advance_an_idle_slot_and_metrics_report_retained_wal() {
    let (db, sql) = scratch_db(
        "capture_heartbeat",
        &["CREATE TABLE watched (id int4 PRIMARY KEY); CREATE TABLE busy (id serial PRIMARY KEY, x text);"],
    )
    .await;
    let port = free_port();
    let file = PipelineFile::new("heartbeat", &["watched"], false);
    let mut capture = Capture::start(
        &file.path,
        &db.url,
        &[
            "--heartbeat-seconds",
            "1",
            "--metrics-port",
            &port.to_string(),
        ],
    );
    wait_for_active_slot(&sql, &mut capture).await;
    let start = slot_confirmed_lsn(&sql).await;

    // WAL the publication filters out entirely.
    sql.batch_execute("INSERT INTO busy (x) SELECT repeat('x', 200) FROM generate_series(1, 5000)")
        .await
        .unwrap();
    let written: i64 = sql
        .query_one("SELECT (pg_current_wal_lsn() - '0/0')::int8", &[])
        .await
        .unwrap()
        .get(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let confirmed = slot_confirmed_lsn(&sql).await;
        if confirmed >= written as u64 {
            assert!(confirmed > start);
            break;
        }
        capture.assert_running();
        assert!(
            Instant::now() < deadline,
            "slot stuck at {confirmed:X} (started at {start:X}) behind {written:X}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let ready = http_get(port, "/ready");
    assert!(
        ready.starts_with("HTTP/1.0 200") || ready.starts_with("HTTP/1.1 200"),
        "{ready}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = http_get(port, "/metrics");
        let heartbeats = metric(&body, "cdcstar_capture_heartbeats_total").unwrap_or(0.0);
        let retained = metric(&body, "cdcstar_capture_retained_wal_bytes");
        let confirmed = metric(&body, "cdcstar_capture_confirmed_lsn").unwrap_or(0.0);
        let sent = metric(&body, "cdcstar_capture_last_sent_commit_time_seconds").unwrap_or(0.0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        if heartbeats >= 1.0
            && confirmed >= written as f64
            && retained.is_some_and(|r| r < 1e6)
            && (now - sent).abs() < 10.0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed progress:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The idle table's topic gets a heartbeat on every partition: no key, empty table and payload,
    // the message's position and the time Postgres wrote it.
    let mut reader = TopicReader::new(&format!("{}.watched", file.prefix));
    let deadline = Instant::now() + Duration::from_secs(20);
    while reader
        .heartbeats
        .iter()
        .map(|h| h.partition)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "heartbeats did not reach every partition: {:#?}",
            reader.heartbeats
        );
        reader.drain(Duration::from_millis(300));
    }
    assert!(reader.events.is_empty(), "{:#?}", reader.events);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    for heartbeat in &reader.heartbeats {
        let metadata = &heartbeat.json["metadata"];
        assert_eq!(heartbeat.key, None);
        assert_eq!(metadata["table"], "");
        assert_eq!(metadata["lsn"], metadata["commitLsn"]);
        assert!(version_of(&heartbeat.json).0 > start, "{heartbeat:?}");
        let time =
            chrono::DateTime::parse_from_rfc3339(metadata["commitTime"].as_str().unwrap()).unwrap();
        let age = now.as_secs_f64() - time.timestamp_micros() as f64 / 1e6;
        assert!((0.0..60.0).contains(&age), "{heartbeat:?}");
        assert_eq!(heartbeat.json["payload"], serde_json::json!({}));
    }

    assert!(capture.terminate());
    db.drop_all().await;
}
