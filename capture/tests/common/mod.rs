//! Shared fixtures of the capture's integration tests: the real services' addresses, a scratch
//! database per test, a pipeline file, the capture binary as a child process, and a topic reader.
//!
//! Over 400 lines: the capture tests' shared harness: a source schema, slot, topics, the binary and
//! reading envelopes back.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;
use tokio_postgres::Client;

#[allow(unused_imports)] // each test binary uses a subset
pub use cdcstar_testkit::{ScratchDb, connect, required_env, unique};

/// Writes a CdcPipeline file for `tables` (primary key `id`) under `dir`.
pub fn write_pipeline(
    dir: &Path,
    name: &str,
    topic_prefix: &str,
    tables: &[&str],
    snapshot: bool,
) -> PathBuf {
    write_pipeline_with(dir, name, topic_prefix, tables, snapshot, "", "")
}

/// [`write_pipeline`] with `source_extras` (lines of YAML) under `spec.source` and
/// `first_table_extras` under its first table.
pub fn write_pipeline_with(
    dir: &Path,
    name: &str,
    topic_prefix: &str,
    tables: &[&str],
    snapshot: bool,
    source_extras: &str,
    first_table_extras: &str,
) -> PathBuf {
    let tables_yaml: String = tables
        .iter()
        .enumerate()
        .map(|(i, t)| match i {
            0 if !first_table_extras.is_empty() => {
                format!("      - name: {t}\n{first_table_extras}\n")
            }
            _ => format!("      - name: {t}\n"),
        })
        .collect();
    // The capture refuses a pipeline that fails validation, which wants a star schema: one
    // dimension per table, keyed by `id`.
    let dimensions_yaml: String = tables
        .iter()
        .map(|t| {
            format!(
                "      - {{name: {t}_dim, source: {t}, key: id, columns: [{{name: id, source: id, type: Int64}}]}}\n"
            )
        })
        .collect();
    let yaml = format!(
        "apiVersion: cdcstar.dev/v1alpha1
kind: CdcPipeline
metadata:
  name: {name}
spec:
  source:
    connectionSecretRef: {{name: unused, key: dsn}}
{source_extras}    tables:
{tables_yaml}  capture:
    engine: native
    snapshot: {snapshot}
  kafka:
    brokers: [\"127.0.0.1:1\"]
    topics: {{mode: perTable, prefix: {topic_prefix}, partitions: 3}}
  clickhouse: {{url: \"http://127.0.0.1:1\"}}
  starSchema:
    dimensions:
{dimensions_yaml}"
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).expect("write pipeline file");
    path
}

/// A scratch database created with `schema` (see [`ScratchDb::with_schema`]) and a session on it.
pub async fn scratch_db(prefix: &str, schema: &[&str]) -> (ScratchDb, Client) {
    let db = ScratchDb::with_schema(prefix, schema).await;
    let sql = db.client().await;
    (db, sql)
}

/// A pipeline file in its own temporary directory (kept while this lives), the pipeline named and
/// its topics prefixed uniquely after a purpose.
pub struct PipelineFile {
    dir: tempfile::TempDir,
    name: String,
    /// The topics' prefix.
    pub prefix: String,
    pub path: PathBuf,
}

impl PipelineFile {
    /// The [`write_pipeline`] file of `tables` for `purpose`.
    pub fn new(purpose: &str, tables: &[&str], snapshot: bool) -> PipelineFile {
        PipelineFile::with(purpose, tables, snapshot, "", "")
    }

    /// The [`write_pipeline_with`] file of `tables` for `purpose`.
    pub fn with(
        purpose: &str,
        tables: &[&str],
        snapshot: bool,
        source_extras: &str,
        first_table_extras: &str,
    ) -> PipelineFile {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = unique(purpose).replace('_', "-");
        let prefix = unique(purpose);
        let path = write_pipeline_with(
            dir.path(),
            &name,
            &prefix,
            tables,
            snapshot,
            source_extras,
            first_table_extras,
        );
        PipelineFile {
            dir,
            name,
            prefix,
            path,
        }
    }

    /// Writes the file again, the same pipeline for `tables`.
    pub fn rewrite(&self, tables: &[&str], snapshot: bool) {
        write_pipeline(self.dir.path(), &self.name, &self.prefix, tables, snapshot);
    }
}

/// Starts a capture of `tables` from `db` (`sql` a session on it), streaming with no snapshot,
/// with topics and a pipeline named uniquely after `purpose`, and waits until its slot is active.
/// Answers the directory holding the pipeline file (keep it while the capture runs), the topics'
/// prefix, the pipeline file and the running capture.
pub async fn start_streaming(
    db: &ScratchDb,
    sql: &Client,
    purpose: &str,
    tables: &[&str],
) -> (tempfile::TempDir, String, PathBuf, Capture) {
    let PipelineFile {
        dir, prefix, path, ..
    } = PipelineFile::new(purpose, tables, false);
    let mut capture = Capture::start(&path, &db.url, &[]);
    wait_for_active_slot(sql, &mut capture).await;
    (dir, prefix, path, capture)
}

/// The capture binary running as a child process.
pub struct Capture {
    child: Child,
}

impl Capture {
    /// Starts `cdcstar-capture --create-slot` for `pipeline` on `database_url`, with `extra` flags.
    pub fn start(pipeline: &Path, database_url: &str, extra: &[&str]) -> Capture {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cdcstar-capture"));
        command.args(["--metrics-host", "127.0.0.1"]);
        if !extra.contains(&"--metrics-port") {
            command.args(["--metrics-port", "0"]);
        }
        let child = command
            .arg("--pipeline")
            .arg(pipeline)
            .args(["--database-url", database_url])
            .args(["--kafka-brokers", &required_env("KAFKA_BROKERS")])
            .arg("--create-slot")
            .args(["--status-interval-ms", "200"])
            .args(extra)
            .env("RUST_LOG", "info,cdcstar_capture=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start cdcstar-capture");
        Capture { child }
    }

    /// SIGKILL: no flush, no confirmation.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for a graceful exit; returns whether it exited successfully.
    pub fn terminate(mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for capture") {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "capture did not stop within 60 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Fails if the process already exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("poll capture") {
            panic!("capture exited early with {status}");
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the slot exists and is active (the capture is streaming).
pub async fn wait_for_active_slot(client: &Client, capture: &mut Capture) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let active = client
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE database = current_database() AND active",
                &[],
            )
            .await
            .unwrap()
            .is_some();
        if active {
            return;
        }
        capture.assert_running();
        if Instant::now() >= deadline {
            // Creating a logical slot waits for every running write transaction of the cluster.
            let blockers: Vec<String> = client
                .query(
                    "SELECT format('%s pid %s since %s: %s', datname, pid, xact_start, left(query, 80)) \
                     FROM pg_stat_activity WHERE backend_xid IS NOT NULL OR backend_type = 'walsender'",
                    &[],
                )
                .await
                .map(|rows| rows.iter().map(|r| r.get(0)).collect())
                .unwrap_or_default();
            panic!(
                "the capture's slot did not become active within 60 s; write transactions and walsenders: {blockers:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One consumed event.
#[derive(Debug, Clone)]
pub struct Consumed {
    /// Message key.
    pub key: Option<String>,
    /// Raw value bytes.
    pub raw: String,
    /// Parsed value.
    pub json: Value,
    pub partition: i32,
}

/// Reads `topic` from the beginning of its partitions.
pub struct TopicReader {
    consumer: BaseConsumer,
    /// Every change read so far, in per-partition order.
    pub events: Vec<Consumed>,
    /// The `heartbeat` envelopes read so far (kept apart: they carry no change and arrive whenever
    /// the heartbeat interval passes).
    pub heartbeats: Vec<Consumed>,
}

impl TopicReader {
    /// A reader of every partition of `topic` (waits until the topic exists).
    pub fn new(topic: &str) -> TopicReader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", required_env("KAFKA_BROKERS"))
            .set("group.id", unique("capture_test_reader"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("create consumer");
        let deadline = Instant::now() + Duration::from_secs(60);
        let partitions = loop {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .expect("fetch metadata");
            let count = metadata
                .topics()
                .first()
                .map(|t| t.partitions().len())
                .unwrap_or(0);
            if count > 0 {
                break count;
            }
            assert!(
                Instant::now() < deadline,
                "topic {topic} was not created within 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions as i32 {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).expect("assign partitions");
        TopicReader {
            consumer,
            events: Vec::new(),
            heartbeats: Vec::new(),
        }
    }

    /// Reads whatever arrives during `duration`.
    pub fn drain(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            self.poll_once();
        }
    }

    fn poll_once(&mut self) {
        if let Some(message) = self.consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("consume");
            let raw = String::from_utf8(message.payload().unwrap_or_default().to_vec())
                .expect("utf-8 value");
            let json: Value = serde_json::from_str(&raw).expect("json value");
            let consumed = Consumed {
                key: message
                    .key()
                    .map(|k| String::from_utf8_lossy(k).into_owned()),
                raw,
                json,
                partition: message.partition(),
            };
            if consumed.json["metadata"]["operation"] == "heartbeat" {
                self.heartbeats.push(consumed);
            } else {
                self.events.push(consumed);
            }
        }
    }

    /// Polls until `done(events)` holds or `timeout` passes; panics with what was read on timeout.
    pub fn read_until(&mut self, timeout: Duration, done: impl Fn(&[Consumed]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(&self.events) {
            assert!(
                Instant::now() < deadline,
                "condition not met within {timeout:?}; read {} events: {:#?}",
                self.events.len(),
                self.events.iter().rev().take(5).collect::<Vec<_>>()
            );
            self.poll_once();
        }
    }
}

/// Final state per key from events, keeping per key the highest version: a streamed change's
/// `(commitLsn, txSeq)` beats a `read` row (no version). Deleted keys are absent.
pub fn final_state(events: &[Consumed]) -> BTreeMap<String, Value> {
    let mut latest: BTreeMap<String, ((u64, u64), Value)> = BTreeMap::new();
    for event in events {
        let key = event.key.clone().expect("every event has a key");
        let version = version_of(&event.json);
        let replace = latest
            .get(&key)
            .is_none_or(|(current, _)| version >= *current);
        if replace {
            latest.insert(key, (version, event.json.clone()));
        }
    }
    latest
        .into_iter()
        .filter(|(_, (_, json))| json["metadata"]["operation"] != "delete")
        .map(|(key, (_, json))| (key, json["payload"].clone()))
        .collect()
}

/// `(commitLsn, txSeq)` of an event, `(0, 0)` for a `read` row.
pub fn version_of(json: &Value) -> (u64, u64) {
    let lsn = json["metadata"]["commitLsn"]
        .as_str()
        .map(|text| {
            let (high, low) = text.split_once('/').unwrap();
            (u64::from_str_radix(high, 16).unwrap() << 32) | u64::from_str_radix(low, 16).unwrap()
        })
        .unwrap_or(0);
    let seq = json["metadata"]["txSeq"].as_u64().unwrap_or(0);
    (lsn, seq)
}

/// The `confirmed_flush_lsn` of the scratch database's slot, as an integer.
pub async fn slot_confirmed_lsn(client: &Client) -> u64 {
    let row = client
        .query_one(
            "SELECT (confirmed_flush_lsn - '0/0')::int8 FROM pg_replication_slots \
             WHERE database = current_database()",
            &[],
        )
        .await
        .expect("read slot position");
    row.get::<_, i64>(0) as u64
}
