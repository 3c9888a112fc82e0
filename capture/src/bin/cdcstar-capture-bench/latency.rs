//! Commit → visible in ClickHouse FINAL at a fixed transaction rate, and where the time goes.
//!
//! The load: one session commits mixed single-row transactions (50 % inserts, 40 % updates, 10 %
//! deletes) into `bench_event`; every insert and update stamps the row with a new sequence number
//! and records `(id, seq, commit instant)`.
//!
//! The probe: a pending change is visible once its row has a version with its sequence number or a
//! later one. One query per poll covers the changes of the last second by their sequence numbers
//! (`SELECT id, max(seq), max(is_deleted) FROM bench_dim WHERE seq >= <oldest of them> GROUP BY id`:
//! a short statement whose answer is about as long as the changes in flight); changes pending for
//! longer (a stall, or a row deleted before its change was seen) are asked for by id
//! (`... WHERE id IN (...)`). The probe shares the ClickHouse fixture, and the CPU, with the
//! pipeline it measures: asking for every pending id made each query cost up to ~60 ms (2 000 ids),
//! precisely when a stall had piled the ids up, which lengthened the stall. FINAL is left out on
//! purpose: a version is visible to a FINAL query from the moment it is inserted (FINAL only picks
//! the newest at read time), and FINAL's merge made each probe cost ~80 ms. A time is taken when
//! the answer arrives, so a figure is an upper bound, late by at most one poll cycle (printed as
//! the probe's resolution). Deletes are not timed; a change whose row's delete arrived before the
//! change was seen is counted as superseded.
//!
//! The breakdown reads the capture's and the sink's latency histograms before and after the run.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::Mutex;

use crate::histogram::Reading;
use crate::{connect, http, pace, percentile};

/// Where the benchmark reads what the processes measured.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// ClickHouse HTTP endpoint.
    pub clickhouse_url: String,
    /// ClickHouse database of the star schema.
    pub clickhouse_database: String,
    /// The capture's metrics page.
    pub capture_metrics: String,
    /// The sink's metrics page.
    pub sink_metrics: String,
}

/// Most rows one probe query asks about by id.
const PROBE_KEYS: usize = 2_000;
/// Changes pending for longer are asked for by id, younger ones by sequence number.
const BY_SEQUENCE_FOR: Duration = Duration::from_secs(1);
/// Pause between the end of one probe query and the next.
const PROBE_PAUSE: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
struct Pending {
    /// `(id, seq, committed at)` of inserts and updates not seen yet, in commit order.
    changes: VecDeque<(i64, i64, Instant)>,
}

#[derive(Debug, Default)]
struct ProbeReport {
    samples: Vec<f64>,
    superseded: usize,
    queries: usize,
    query_ms: f64,
    errors: usize,
}

/// The histograms of the breakdown, in pipeline order.
const STAGES: [(&str, &str, bool); 4] = [
    (
        "commit -> read from the slot by the capture",
        "cdcstar_capture_commit_to_read_seconds",
        true,
    ),
    (
        "commit -> acknowledged by the broker (capture + broker)",
        "cdcstar_capture_commit_to_ack_seconds",
        true,
    ),
    (
        "commit -> inserted into ClickHouse by the sink",
        "cdcstar_sink_end_to_end_lag_seconds",
        false,
    ),
    (
        "sink insert duration per batch (ClickHouse fixture)",
        "cdcstar_sink_apply_seconds",
        false,
    ),
];

async fn read_stages(endpoints: &Endpoints) -> Vec<Reading> {
    let mut readings = Vec::new();
    for (_, name, from_capture) in STAGES {
        let url = if from_capture {
            &endpoints.capture_metrics
        } else {
            &endpoints.sink_metrics
        };
        readings.push(Reading::fetch(url, name).await.unwrap_or_default());
    }
    readings
}

async fn probe(
    endpoints: Endpoints,
    pending: Arc<Mutex<Pending>>,
    load_done: Arc<AtomicBool>,
) -> ProbeReport {
    let mut report = ProbeReport::default();
    loop {
        // The oldest sequence number of the young changes, and the ids of the older ones.
        let (young_from, old_ids): (Option<i64>, Vec<i64>) = {
            let pending = pending.lock().await;
            let young_since = Instant::now() - BY_SEQUENCE_FOR;
            let young = pending
                .changes
                .partition_point(|(_, _, committed)| *committed < young_since);
            let mut seen = HashSet::new();
            let old_ids = pending
                .changes
                .range(..young)
                .map(|(id, _, _)| *id)
                .filter(|id| seen.insert(*id))
                .take(PROBE_KEYS)
                .collect();
            (pending.changes.get(young).map(|(_, seq, _)| *seq), old_ids)
        };
        if young_from.is_none() && old_ids.is_empty() {
            if load_done.load(Ordering::Acquire) {
                return report;
            }
            tokio::time::sleep(PROBE_PAUSE).await;
            continue;
        }
        let mut filters = Vec::new();
        if let Some(seq) = young_from {
            filters.push(format!("seq >= {seq}"));
        }
        if !old_ids.is_empty() {
            let mut ids = String::from("id IN (");
            for (n, id) in old_ids.iter().enumerate() {
                let _ = write!(ids, "{}{id}", if n == 0 { "" } else { "," });
            }
            ids.push(')');
            filters.push(ids);
        }
        let query = format!(
            "SELECT id, max(seq), max(is_deleted) FROM bench_dim WHERE {} GROUP BY id FORMAT TabSeparated",
            filters.join(" OR ")
        );
        let sent = Instant::now();
        let answer = http::clickhouse(
            &endpoints.clickhouse_url,
            &endpoints.clickhouse_database,
            &query,
        )
        .await;
        let seen_at = Instant::now();
        report.queries += 1;
        report.query_ms += (seen_at - sent).as_secs_f64() * 1000.0;
        // id → (newest sequence number inserted, whether its delete arrived)
        let visible: HashMap<i64, (i64, bool)> = match answer {
            Ok(body) => body
                .lines()
                .filter_map(|line| {
                    let mut fields = line.split('\t');
                    let id = fields.next()?.parse().ok()?;
                    let seq = fields.next()?.parse().ok()?;
                    let deleted = fields.next()? != "0";
                    Some((id, (seq, deleted)))
                })
                .collect(),
            Err(err) => {
                report.errors += 1;
                if report.errors % 20 == 1 {
                    eprintln!("clickhouse probe failed: {err:#}");
                }
                tokio::time::sleep(PROBE_PAUSE).await;
                continue;
            }
        };
        let asked_by_id: HashSet<i64> = old_ids.into_iter().collect();
        let young_from = young_from.unwrap_or(i64::MAX);
        let mut pending = pending.lock().await;
        pending.changes.retain(|(id, seq, committed)| {
            // A change queued after the query was built is covered too when its sequence number is
            // in range: whatever the answer shows was inserted before it arrived.
            if *seq < young_from && !asked_by_id.contains(id) {
                return true;
            }
            match visible.get(id) {
                Some((shown, _)) if shown >= seq => {
                    report
                        .samples
                        .push((seen_at - *committed).as_secs_f64() * 1000.0);
                    false
                }
                Some((_, true)) => {
                    report.superseded += 1;
                    false
                }
                _ => true,
            }
        });
        drop(pending);
        tokio::time::sleep(PROBE_PAUSE).await;
    }
}

/// The load's insert, timed by the probe.
const INSERT: &str = "INSERT INTO bench_event (id, seq, note, amount) VALUES ($1, $2, 'new', 12.5)";
/// The load's update, timed by the probe.
const UPDATE: &str = "UPDATE bench_event SET seq = $2, note = 'updated' WHERE id = $1";

/// Runs `statement` ([`INSERT`] or [`UPDATE`]: `$1` the row's id, `$2` its new `seq`) and queues
/// the change for the probe, timed from its commit.
async fn write_timed(
    client: &tokio_postgres::Client,
    pending: &Mutex<Pending>,
    statement: &str,
    id: i64,
    seq: i64,
) -> Result<()> {
    client.execute(statement, &[&id, &seq]).await?;
    pending
        .lock()
        .await
        .changes
        .push_back((id, seq, Instant::now()));
    Ok(())
}

/// Runs the load for `seconds` at `rate` transactions/s and prints the latency and its breakdown.
pub async fn run(url: &str, rate: u64, seconds: u64, endpoints: Endpoints) -> Result<()> {
    let client = connect(url).await?;
    let start_seq: i64 = client
        .query_one("SELECT coalesce(max(seq), 0) FROM bench_event", &[])
        .await?
        .get(0);
    let mut id: i64 = client
        .query_one("SELECT coalesce(max(id), 0) + 1 FROM bench_event", &[])
        .await?
        .get(0);
    let before = read_stages(&endpoints).await;
    let pending: Arc<Mutex<Pending>> = Arc::default();
    let load_done = Arc::new(AtomicBool::new(false));
    let poller = tokio::spawn(probe(
        endpoints.clone(),
        Arc::clone(&pending),
        Arc::clone(&load_done),
    ));

    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let began = Instant::now();
    let deadline = began + Duration::from_secs(seconds);
    let mut seq = start_seq;
    let mut live: Vec<i64> = Vec::new();
    let (mut inserts, mut updates, mut deletes) = (0u64, 0u64, 0u64);
    let mut next_at = began;
    while Instant::now() < deadline {
        seq += 1;
        let pick = seq % 10;
        if pick < 5 || live.len() < 100 {
            write_timed(&client, &pending, INSERT, id, seq).await?;
            live.push(id);
            id += 1;
            inserts += 1;
        } else if pick < 9 {
            let target = live[(seq as usize * 7919) % live.len()];
            write_timed(&client, &pending, UPDATE, target, seq).await?;
            updates += 1;
        } else {
            let target = live.swap_remove((seq as usize * 104_729) % live.len());
            client
                .execute("DELETE FROM bench_event WHERE id = $1", &[&target])
                .await?;
            deletes += 1;
        }
        next_at += interval;
        pace(next_at).await;
    }
    let elapsed = began.elapsed().as_secs_f64();
    load_done.store(true, Ordering::Release);
    let drain_started = Instant::now();
    let mut report = tokio::time::timeout(Duration::from_secs(120), poller)
        .await
        .context("changes still not visible 120 s after the load ended")??;
    let drained = drain_started.elapsed().as_secs_f64();
    let after = read_stages(&endpoints).await;
    report.samples.sort_by(f64::total_cmp);
    let transactions = inserts + updates + deletes;
    println!(
        "latency load: {transactions} transactions in {elapsed:.1} s = {:.0} tx/s \
         ({inserts} inserts, {updates} updates, {deletes} deletes)",
        transactions as f64 / elapsed
    );
    println!(
        "commit -> visible in ClickHouse (FINAL) over {} inserts/updates: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms \
         ({} superseded by a delete before seen; deletes not timed)",
        report.samples.len(),
        percentile(&report.samples, 0.50),
        percentile(&report.samples, 0.95),
        percentile(&report.samples, 0.99),
        report.samples.last().copied().unwrap_or(f64::NAN),
        report.superseded
    );
    let mean_query = report.query_ms / report.queries.max(1) as f64;
    println!(
        "probe: {} queries (one per poll: the last {} s of changes by sequence number, older ones by id, up to {PROBE_KEYS}), \
         mean {mean_query:.0} ms on the ClickHouse adapter \
         (which also serves the sink's inserts), {} ms pause: resolution ~{:.0} ms (a figure is late by at most that), {} errors",
        report.queries,
        BY_SEQUENCE_FOR.as_secs(),
        PROBE_PAUSE.as_millis(),
        mean_query + PROBE_PAUSE.as_millis() as f64,
        report.errors
    );
    println!("backlog after the load: drained in {drained:.1} s");
    println!(
        "where the time goes (the processes' own histograms over this run; pXX interpolated in buckets):"
    );
    for ((what, _, _), (after, before)) in STAGES.iter().zip(after.iter().zip(&before)) {
        println!("  {what:<58} {}", after.since(before).summary());
    }
    Ok(())
}
