//! `cdcstar-sink verify` against a real pipeline: the reference app's tables in a Postgres database
//! of the test's own, the native capture (in-process, heartbeats every second) and the sink binary
//! keeping the star schema, the verifier binary comparing the two. A clean pipeline under a live
//! stream of changes reports no mismatch over several rounds; a row changed by hand in ClickHouse, a
//! row deleted from it and a row added to it are each reported with their key within one round, and
//! repaired with `--repair`; `--resync` re-copies a table damaged by hand while the stream goes on.
//!
//! Over 400 lines: the running pipeline the scenarios share (Postgres, capture, sink, verifier) is
//! built here, and each scenario needs its stream of changes beside its checks.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cdcstar_capture::settings::CaptureArgs;
use cdcstar_testkit::{ScratchDb, connect};
use clap::Parser;
use common::{TestPipeline, eventually_or, execute_with, kafka_brokers, query_json};
use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;

const MIGRATIONS: [&str; 2] = [
    include_str!("../../api/migrations/20250101000001_create_shop_tables.sql"),
    include_str!("../../api/migrations/20250101000002_replica_identity_full.sql"),
];

/// The sink binary keeping the star schema.
struct Sink {
    child: Child,
}

impl Sink {
    fn start(pipeline: &TestPipeline) -> Sink {
        let log = pipeline.file.with_file_name("sink.log");
        let child = Command::new(env!("CARGO_BIN_EXE_cdcstar-sink"))
            .arg("--pipeline")
            .arg(&pipeline.file)
            .args(["--metrics-addr", "127.0.0.1:0"])
            .args(["--batch-wait-ms", "100"])
            .args(["--lookup-recheck", "false"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start cdcstar-sink");
        Sink { child }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cdcstar-sink verify --output json` with `extra` flags; the exit code and the report.
fn verify(pipeline: &TestPipeline, db: &ScratchDb, extra: &[&str]) -> (i32, Json) {
    let output: Output = Command::new(env!("CARGO_BIN_EXE_cdcstar-sink"))
        .arg("verify")
        .arg("--pipeline")
        .arg(&pipeline.file)
        .args(["--database-url", &db.url])
        .args(["--output", "json", "--recheck-timeout-seconds", "60"])
        .args(extra)
        .env("RUST_LOG", "info")
        .output()
        .expect("run cdcstar-sink verify");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no JSON report ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), report)
}

/// Starts the capture of `pipeline` in-process, heartbeats every second; `extra`: more flags.
fn start_capture(file: &Path, db: &ScratchDb, extra: &[&str]) -> CancellationToken {
    let args = CaptureArgs::parse_from(
        [
            "cdcstar-capture",
            "--pipeline",
            file.to_str().unwrap(),
            "--database-url",
            &db.url,
            "--kafka-brokers",
            &kafka_brokers(),
            "--create-slot",
            "--metrics-host",
            "127.0.0.1",
            "--metrics-port",
            "0",
            "--heartbeat-seconds",
            "1",
            "--status-interval-ms",
            "200",
        ]
        .iter()
        .chain(extra),
    );
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        if let Err(error) = cdcstar_capture::app::run(args, token).await {
            panic!("capture failed: {error}");
        }
    });
    stop
}

/// The shop's rows: 30 customers, 5 products, 60 orders, 120 items.
const SHOP_ROWS: &str = "INSERT INTO customer (email, name, country, city) \
       SELECT 'c' || i || '@example.com', 'customer ' || i, 'FR', 'Paris' \
       FROM generate_series(1, 30) i;
     INSERT INTO product (name, category, price) \
       SELECT 'product ' || i, 'office', i * 1.5 FROM generate_series(1, 5) i;
     INSERT INTO \"order\" (\"customerId\", total, status) \
       SELECT 1 + i % 30, 10 + i * 0.25, 'pending' FROM generate_series(1, 60) i;
     INSERT INTO orderitem (\"orderId\", \"productId\", quantity, price) \
       SELECT 1 + i % 60, 1 + i % 5, 1 + i % 3, 2.5 FROM generate_series(1, 120) i;";

/// The shop's star tables, in the order of the counts the tests expect.
const SHOP_TABLES: [&str; 4] = [
    "customer_dim",
    "product_dim",
    "order_fact",
    "orderitem_fact",
];

/// Live rows of each of `tables`.
async fn counts(pipeline: &TestPipeline, tables: &[&str]) -> Vec<u64> {
    let mut counts = Vec::new();
    for table in tables {
        let sql = format!("SELECT count() AS n FROM `{table}` FINAL WHERE is_deleted = 0");
        let rows = query_json(&pipeline.store, &sql).await;
        counts.push(rows[0]["n"].as_u64().unwrap());
    }
    counts
}

/// Changes in a loop until `stop`: renames, status changes, new orders with items, deleted items.
async fn stream_changes(url: String, stop: Arc<AtomicBool>, changes: Arc<AtomicU64>) {
    let client = connect(&url).await;
    let mut i: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let statement = match i % 4 {
            0 => format!(
                "UPDATE customer SET name = 'renamed {i}' WHERE id = {}",
                1 + i % 30
            ),
            1 => format!(
                "UPDATE \"order\" SET status = 'status {i}' WHERE id = {}",
                1 + i % 60
            ),
            2 => format!(
                "WITH o AS (INSERT INTO \"order\" (\"customerId\", total, status) \
                 VALUES ({}, 5, 'new') RETURNING id) \
                 INSERT INTO orderitem (\"orderId\", \"productId\", quantity, price) \
                 SELECT id, {}, 1, 3.5 FROM o",
                1 + i % 30,
                1 + i % 5
            ),
            _ => "DELETE FROM orderitem WHERE id = (SELECT min(id) FROM orderitem)".to_owned(),
        };
        client.batch_execute(&statement).await.unwrap();
        changes.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

fn table<'a>(round: &'a Json, name: &str) -> &'a Json {
    round["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == name)
        .unwrap_or_else(|| panic!("no table {name} in {round}"))
}

/// The sum over a round's tables of `field`: a count, or the length of a list.
fn total(round: &Json, field: &str) -> usize {
    round["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| match &t[field] {
            Json::Array(items) => items.len(),
            other => other.as_u64().unwrap_or(0) as usize,
        })
        .sum()
}

/// The newest verification per table as the operator reads it: (table, mismatches, keys, repaired).
async fn recorded(pipeline: &TestPipeline) -> Vec<(String, u64, Vec<String>, u64)> {
    let sql = cdcstar_crds::status_tables::verifications_query(&pipeline.database);
    let bytes = pipeline
        .store
        .client()
        .query(&sql)
        .param("pipeline", pipeline.pipeline.status_key())
        .with_option("output_format_json_quote_64bit_integers", "0")
        .fetch_bytes("JSONEachRow")
        .unwrap()
        .collect()
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(|line| {
            let row: Json = serde_json::from_str(line).unwrap();
            let keys = row["mismatch_keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_owned())
                .collect();
            (
                row["table"].as_str().unwrap().to_owned(),
                row["mismatches"].as_u64().unwrap(),
                keys,
                row["repaired"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// What a running pipeline's source holds: its tables, the rows written once the capture's slot
/// exists, and the live rows each star table then has.
struct SourceRows<'a> {
    schema: &'a [&'a str],
    rows: &'a str,
    expected: &'a [(&'a str, u64)],
}

/// A running pipeline over a database of its own: the in-process capture (with `capture_flags`),
/// the sink binary, and the source's rows written once the slot exists.
struct Running {
    db: ScratchDb,
    pipeline: TestPipeline,
    capture: CancellationToken,
    sink: Sink,
}

impl Running {
    /// The shop's pipeline with `edit` applied, running until ClickHouse holds `expected` live
    /// rows per star table ([`SHOP_TABLES`] order).
    async fn shop(
        edit: impl FnOnce(&mut cdcstar_crds::CdcPipeline),
        capture_flags: &[&str],
        expected: [u64; 4],
    ) -> Running {
        let counts = [0, 1, 2, 3].map(|i| (SHOP_TABLES[i], expected[i]));
        let source = SourceRows {
            schema: &MIGRATIONS,
            rows: SHOP_ROWS,
            expected: &counts,
        };
        Running::start(&source, edit, capture_flags).await
    }

    /// Starts it over `source`, `edit` applied to the example pipeline, and waits until ClickHouse
    /// holds the live rows `source` expects.
    async fn start(
        source: &SourceRows<'_>,
        edit: impl FnOnce(&mut cdcstar_crds::CdcPipeline),
        capture_flags: &[&str],
    ) -> Running {
        // The in-process capture's log, shown when the test fails.
        let _ = cdcstar_runtime::logging::init(cdcstar_runtime::logging::LogFormat::Text, "info");
        let db = ScratchDb::with_schema("verify", source.schema).await;
        let pipeline = TestPipeline::with("verify", |p| {
            p.spec.capture.snapshot = false;
            edit(p);
        })
        .await;
        pipeline.create_topics(&kafka_brokers(), 3).await;
        let capture = start_capture(&pipeline.file, &db, capture_flags);
        let running = Running {
            sink: Sink::start(&pipeline),
            db,
            pipeline,
            capture,
        };
        // The capture starts streaming from its slot: rows written once it exists are captured.
        let client = connect(&running.db.url).await;
        let slot = running.pipeline.pipeline.slot_name();
        eventually_or(
            Duration::from_secs(60),
            "the capture's slot",
            || async {
                let rows = client
                    .query(
                        "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                        &[&slot],
                    )
                    .await
                    .unwrap();
                !rows.is_empty()
            },
            &|| running.log(),
        )
        .await;
        client.batch_execute(source.rows).await.unwrap();
        let (tables, expected): (Vec<&str>, Vec<u64>) = source.expected.iter().copied().unzip();
        eventually_or(
            Duration::from_secs(120),
            "the rows in ClickHouse",
            || async { counts(&running.pipeline, &tables).await == expected },
            &|| running.log(),
        )
        .await;
        running
    }

    /// The sink's log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.pipeline.file.with_file_name("sink.log")).unwrap_or_default()
    }

    async fn stop(self) {
        self.capture.cancel();
        drop(self.sink);
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.db.drop_all().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verification_under_a_live_stream_then_of_hand_made_damage_and_its_repair() {
    let running = Running::shop(|_| {}, &[], [30, 5, 60, 120]).await;
    let (db, pipeline) = (&running.db, &running.pipeline);
    let log = || running.log();

    // 1. A live stream: several rounds, in chunks of 16 keys, report nothing.
    let stop = Arc::new(AtomicBool::new(false));
    let changes = Arc::new(AtomicU64::new(0));
    let stream = tokio::spawn(stream_changes(
        db.url.clone(),
        stop.clone(),
        changes.clone(),
    ));
    eventually_or(
        Duration::from_secs(30),
        "the stream's first changes",
        || async { changes.load(Ordering::Relaxed) >= 10 },
        &log,
    )
    .await;
    let (code, report) = {
        let (pipeline, db) = (&pipeline, &db);
        tokio::task::block_in_place(|| {
            verify(pipeline, db, &["--rounds", "3", "--chunk-rows", "16"])
        })
    };
    stop.store(true, Ordering::Relaxed);
    stream.await.unwrap();
    let streamed = changes.load(Ordering::Relaxed);
    assert!(streamed > 20, "the stream was live: {streamed} changes");
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 3);
    for round in rounds {
        assert_eq!(total(round, "mismatches"), 0, "no false alarm: {round:#}");
        let items = table(round, "orderitem_fact");
        assert!(items["rowsChecked"].as_u64().unwrap() >= 100, "{items}");
        assert!(items["chunks"].as_u64().unwrap() >= 7, "{items}");
    }
    assert_eq!(code, 0, "{report:#}");
    // Everything the stream wrote is applied before the damage below: a round that finds nothing
    // (its re-check waits for keys still in flight) means ClickHouse holds what Postgres holds, so
    // no late change of an order of customer 7 is enriched from the damaged name (under load, the
    // sink's tail of the stream once landed after the damage and reported those orders too).
    let (code, settled_round) =
        tokio::task::block_in_place(|| verify(pipeline, db, &["--rounds", "1"]));
    assert_eq!(code, 0, "{settled_round:#}");
    // The stream did put keys in flight: they differed at first sight and the re-check after the
    // watermark settled them (each would have been a false alarm without it).
    let settled: usize = rounds.iter().map(|r| total(r, "settled")).sum();
    assert!(settled > 0, "no key was in flight: {report:#}");

    // 2. Damage by hand in ClickHouse: a customer renamed, an order item deleted, a customer that
    // Postgres does not have.
    let ch = |sql: String| {
        let store = pipeline.store.clone();
        async move { execute_with(&store, &sql, &[("mutations_sync", "2")]).await }
    };
    ch("INSERT INTO customer_dim (customer_id, email, name, country, city, created_at, lsn, is_deleted) \
        SELECT customer_id, email, 'changed by hand', country, city, created_at, lsn + 1, 0 \
        FROM customer_dim FINAL WHERE customer_id = 7"
        .into())
    .await;
    let item: u64 = query_json(
        &pipeline.store,
        "SELECT max(orderitem_id) AS id FROM orderitem_fact FINAL WHERE is_deleted = 0",
    )
    .await[0]["id"]
        .as_u64()
        .unwrap();
    ch(format!(
        "DELETE FROM orderitem_fact WHERE orderitem_id = {item}"
    ))
    .await;
    ch("INSERT INTO customer_dim (customer_id, email, name, country, city, created_at, lsn, is_deleted) \
        VALUES (9999, 'x@example.com', 'nobody', 'FR', 'Paris', 0, 1, 0)"
        .into())
    .await;

    // The three keys damaged by hand, as `field` of a round's tables lists them.
    let assert_damage_listed = |round: &Json, field: &str| {
        assert_eq!(
            table(round, "customer_dim")[field],
            json!([
                {"key": "7", "kind": "values", "columns": ["name"]},
                {"key": "9999", "kind": "extraInClickHouse"},
            ]),
            "{round:#}"
        );
        assert_eq!(
            table(round, "orderitem_fact")[field],
            json!([{"key": item.to_string(), "kind": "missingInClickHouse"}]),
            "{round:#}"
        );
    };
    let (code, report) = tokio::task::block_in_place(|| verify(pipeline, db, &[]));
    assert_eq!(code, 1, "{report:#}");
    let round = &report["rounds"][0];
    assert_damage_listed(round, "mismatches");
    assert_eq!(total(round, "mismatches"), 3, "{round:#}");
    // The result is in ClickHouse for the operator, the newest run per table.
    let item_key = item.to_string();
    assert_eq!(
        recorded(pipeline).await,
        [
            ("customer_dim".into(), 2, vec!["7".into(), "9999".into()], 0),
            ("order_fact".into(), 0, vec![], 0),
            ("orderitem_fact".into(), 1, vec![item_key], 0),
            ("product_dim".into(), 0, vec![], 0),
        ]
    );

    // 3. --repair re-emits them, the sink applies them, and they are checked again.
    let (code, report) = tokio::task::block_in_place(|| verify(pipeline, db, &["--repair"]));
    assert_eq!(code, 0, "{report:#}\n{}", log());
    let round = &report["rounds"][0];
    assert_eq!(total(round, "mismatches"), 0, "{round:#}");
    assert_damage_listed(round, "repaired");
    assert_eq!(
        total(round, "settled"),
        0,
        "repaired keys are not in flight: {round:#}"
    );
    let name = query_json(
        &pipeline.store,
        "SELECT name FROM customer_dim FINAL WHERE customer_id = 7 AND is_deleted = 0",
    )
    .await;
    assert_ne!(name[0]["name"], "changed by hand");
    let after_repair: Vec<(u64, u64)> = recorded(pipeline)
        .await
        .into_iter()
        .map(|(_, mismatches, _, repaired)| (mismatches, repaired))
        .collect();
    assert_eq!(after_repair, [(0, 2), (0, 0), (0, 1), (0, 0)]);

    // 4. A later round finds nothing.
    let (code, report) = tokio::task::block_in_place(|| verify(pipeline, db, &[]));
    assert_eq!(code, 0, "{report:#}");

    // 5. `--resync` re-copies one table while the pipeline streams: every customer is re-emitted
    // over names made stale by hand, a customer Postgres lacks is deleted, and the orders'
    // denormalised names, made stale by hand too, are re-enriched by the propagation it causes.
    ch("INSERT INTO customer_dim (customer_id, email, name, country, city, created_at, lsn, is_deleted) \
        SELECT customer_id, email, 'stale', country, city, created_at, lsn + 1, 0 \
        FROM customer_dim FINAL WHERE is_deleted = 0"
        .into())
    .await;
    ch("INSERT INTO customer_dim (customer_id, email, name, country, city, created_at, lsn, is_deleted) \
        VALUES (8888, 'y@example.com', 'nobody', 'FR', 'Paris', 0, 1, 0)"
        .into())
    .await;
    ch(
        "INSERT INTO order_fact SELECT * REPLACE ('stale' AS customer_name, lsn + 1 AS lsn) \
        FROM order_fact FINAL WHERE is_deleted = 0 AND customer_id = 3"
            .into(),
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let stream = tokio::spawn(stream_changes(
        db.url.clone(),
        stop.clone(),
        changes.clone(),
    ));
    let (code, report) = tokio::task::block_in_place(|| {
        verify(
            pipeline,
            db,
            &["--resync", "--table", "customer_dim", "--chunk-rows", "8"],
        )
    });
    stop.store(true, Ordering::Relaxed);
    stream.await.unwrap();
    assert_eq!(code, 0, "{report:#}\n{}", log());
    let round = &report["rounds"][0];
    let customers = table(round, "customer_dim");
    assert_eq!(
        customers["resynced"], 31,
        "30 customers and the extra one: {round:#}"
    );
    assert_eq!(round["tables"].as_array().unwrap().len(), 1, "{round:#}");
    let stale = query_json(
        &pipeline.store,
        "SELECT (SELECT count() FROM customer_dim FINAL WHERE is_deleted = 0 \
                   AND (name = 'stale' OR customer_id = 8888)) AS dims, \
                (SELECT count() FROM order_fact FINAL WHERE is_deleted = 0 \
                   AND customer_name = 'stale') AS facts",
    )
    .await;
    assert_eq!(stale[0], json!({"dims": 0, "facts": 0}), "{}", log());

    running.stop().await;
}

/// The salt of the masked pipeline's capture.
const SALT: &str = "verify-salt";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_masked_and_filtered_pipeline_verifies_equal_and_repairs_with_masked_values() {
    use cdcstar_crds::pipeline::{FilterOp, RowCondition};
    // Emails hashed, names redacted, and only the orders whose total is under 20 copied: 39 of the
    // 60 (totals are 10 + i / 4), and their items.
    let running = Running::shop(
        |p| {
            p.spec.source.mask_salt_secret_ref = Some(cdcstar_crds::pipeline::SecretKeyRef {
                name: "salt".into(),
                key: "salt".into(),
            });
            for table in &mut p.spec.source.tables {
                match table.name.as_str() {
                    "customer" => {
                        table.mask = serde_json::from_value(json!([
                            {"column": "email", "with": "hash"},
                            {"column": "name", "with": "redact"},
                        ]))
                        .unwrap();
                    }
                    "order" => {
                        table.row_filter = vec![RowCondition {
                            column: "total".into(),
                            op: FilterOp::Lt,
                            value: Some("20".into()),
                            values: Vec::new(),
                        }];
                    }
                    _ => {}
                }
            }
        },
        &["--mask-salt", SALT],
        [30, 5, 39, 120],
    )
    .await;
    let (db, pipeline) = (&running.db, &running.pipeline);
    let salted = ["--mask-salt", SALT];

    // Without the capture's view the verifier would find every email and name different and 21
    // orders missing.
    let (code, report) = tokio::task::block_in_place(|| verify(pipeline, db, &salted));
    assert_eq!(code, 0, "{report:#}\n{}", running.log());
    let round = &report["rounds"][0];
    assert_eq!(table(round, "order_fact")["rowsChecked"], 39, "{round:#}");
    assert_eq!(total(round, "mismatches"), 0, "{round:#}");

    // A hashed email damaged by hand is repaired with the hash, never the address.
    let expected_hash = query_json(
        &pipeline.store,
        "SELECT email FROM customer_dim FINAL WHERE customer_id = 7 AND is_deleted = 0",
    )
    .await[0]["email"]
        .clone();
    assert_eq!(expected_hash.as_str().unwrap().len(), 64, "{expected_hash}");
    pipeline
        .store
        .client()
        .query(
            "INSERT INTO customer_dim (customer_id, email, name, country, city, created_at, lsn, is_deleted) \
             SELECT customer_id, 'damaged', name, country, city, created_at, lsn + 1, 0 \
             FROM customer_dim FINAL WHERE customer_id = 7",
        )
        .execute()
        .await
        .unwrap();
    let (code, report) =
        tokio::task::block_in_place(|| verify(pipeline, db, &["--mask-salt", SALT, "--repair"]));
    assert_eq!(code, 0, "{report:#}\n{}", running.log());
    assert_eq!(
        table(&report["rounds"][0], "customer_dim")["repaired"],
        json!([{"key": "7", "kind": "values", "columns": ["email"]}]),
        "{report:#}"
    );
    let repaired = query_json(
        &pipeline.store,
        "SELECT email, name FROM customer_dim FINAL WHERE customer_id = 7 AND is_deleted = 0",
    )
    .await;
    assert_eq!(
        repaired[0],
        json!({"email": expected_hash, "name": "REDACTED"})
    );

    // Without the salt the verifier refuses to run rather than compare or emit raw values.
    let (code, _) = tokio::task::block_in_place(|| {
        let output = Command::new(env!("CARGO_BIN_EXE_cdcstar-sink"))
            .args(["verify", "--pipeline"])
            .arg(&pipeline.file)
            .args(["--database-url", &db.url])
            .env_remove("CAPTURE_MASK_SALT")
            .output()
            .unwrap();
        (output.status.code(), output)
    });
    assert_eq!(code, Some(2));

    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_keyed_by_uuid_is_verified_in_the_key_ranges_postgres_has() {
    // 50 devices under random UUIDs, compared 7 keys a chunk: ClickHouse orders UUIDs by their
    // halves, Postgres by their bytes; compared by their text, each chunk is the same key range on
    // both sides, so nothing differs, not even at first sight.
    let source = SourceRows {
        schema: &[
            "CREATE TABLE device (id uuid PRIMARY KEY, name text NOT NULL); \
                   ALTER TABLE device REPLICA IDENTITY FULL;",
        ],
        rows: "INSERT INTO device SELECT gen_random_uuid(), 'device ' || i \
               FROM generate_series(1, 50) i",
        expected: &[("device_dim", 50)],
    };
    let running = Running::start(
        &source,
        |p| {
            p.spec.source.tables = vec![cdcstar_crds::pipeline::SourceTable::new("device", "id")];
            p.spec.star_schema = serde_json::from_value(json!({"dimensions": [{
                "name": "device_dim", "source": "device", "key": "device_id",
                "columns": [
                    {"name": "device_id", "source": "id", "type": "UUID"},
                    {"name": "name", "source": "name", "type": "String"},
                ],
            }]}))
            .unwrap();
        },
        &[],
    )
    .await;
    let (db, pipeline) = (&running.db, &running.pipeline);
    let (code, report) =
        tokio::task::block_in_place(|| verify(pipeline, db, &["--chunk-rows", "7"]));
    assert_eq!(code, 0, "{report:#}\n{}", running.log());
    let devices = table(&report["rounds"][0], "device_dim");
    assert_eq!(devices["rowsChecked"], 50, "{devices}");
    assert_eq!(devices["chunks"], 8, "{devices}");
    assert_eq!(devices["settled"], 0, "no chunk differed: {devices}");
    assert!(devices.get("notVerified").is_none(), "{devices}");

    // A device deleted from ClickHouse by hand is found by its UUID.
    let gone = query_json(
        &pipeline.store,
        "SELECT toString(device_id) AS id FROM device_dim FINAL ORDER BY device_id LIMIT 1",
    )
    .await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    pipeline
        .store
        .client()
        .query(&format!(
            "DELETE FROM device_dim WHERE device_id = toUUID('{gone}')"
        ))
        .with_option("mutations_sync", "2")
        .execute()
        .await
        .unwrap();
    let (code, report) = tokio::task::block_in_place(|| verify(pipeline, db, &[]));
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        table(&report["rounds"][0], "device_dim")["mismatches"],
        json!([{"key": gone, "kind": "missingInClickHouse"}])
    );
    running.stop().await;
}
