//! The initial snapshot against a real Postgres and broker: rows that exist before the capture
//! starts and rows written while it snapshots all end in the final per-key state exactly as
//! Postgres has them, also when the capture is killed mid-snapshot and resumes; a table added to
//! the pipeline later is snapshotted on its own; a slot the operator recreates (after Postgres
//! invalidated it) is snapshotted again, rows written while it was lost included.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{
    Capture, Consumed, PipelineFile, TopicReader, final_state, scratch_db, wait_for_active_slot,
};
use serde_json::{Value, json};
use tokio_postgres::Client;

const EXISTING: i32 = 3000;

/// How many of `events` are snapshot rows (`read`).
fn snapshot_reads(events: &[Consumed]) -> usize {
    events
        .iter()
        .filter(|e| e.json["metadata"]["operation"] == "read")
        .count()
}

async fn postgres_state(sql: &Client, table: &str) -> BTreeMap<String, Value> {
    sql.query(&format!("SELECT id, v FROM {table} ORDER BY id"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| {
            let id: i32 = row.get(0);
            let v: i32 = row.get(1);
            (id.to_string(), json!({"id": id, "v": v}))
        })
        .collect()
}

async fn progress(sql: &Client) -> Vec<(String, String, i64)> {
    sql.query(
        "SELECT table_name, state, rows FROM cdcstar.snapshot_progress ORDER BY table_name",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get(0), row.get(1), row.get(2)))
    .collect()
}

/// Waits, a minute at most, until the snapshot progress rows satisfy `done`, and returns them;
/// fails saying `what` and the last rows read.
async fn wait_for_progress(
    sql: &Client,
    what: &str,
    done: impl Fn(&[(String, String, i64)]) -> bool,
) -> Vec<(String, String, i64)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let rows = progress(sql).await;
        if done(&rows) {
            return rows;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {rows:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes during the snapshot: updates of existing rows, inserts of new ones, deletes.
async fn churn(sql: &Client, round: i32) {
    for i in 0..40 {
        let id = (round * 97 + i * 31) % EXISTING + 1;
        sql.execute("UPDATE item SET v = v + 1000 WHERE id = $1", &[&id])
            .await
            .unwrap();
        sql.execute(
            "INSERT INTO item VALUES ($1, $2)",
            &[&(EXISTING + round * 40 + i + 1), &round],
        )
        .await
        .unwrap();
        if i % 5 == 0 {
            sql.execute("DELETE FROM item WHERE id = $1", &[&(id + 1)])
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_with_concurrent_writes_and_a_crash_converges_to_postgres() {
    let (db, sql) = scratch_db(
        "capture_snapshot",
        &[&format!(
            "CREATE TABLE item (id int4 PRIMARY KEY, v int4 NOT NULL);
         INSERT INTO item SELECT g, g FROM generate_series(1, {EXISTING}) g;"
        )],
    )
    .await;
    let file = PipelineFile::new("snap", &["item"], true);
    let (pipeline, prefix) = (&file.path, &file.prefix);
    // Small batches make the snapshot slow enough to write and crash during it.
    let flags = ["--snapshot-batch-size", "25"];
    let mut capture = Capture::start(pipeline, &db.url, &flags);
    wait_for_active_slot(&sql, &mut capture).await;

    let mut reader = TopicReader::new(&format!("{prefix}.item"));
    churn(&sql, 0).await;
    reader.read_until(Duration::from_secs(60), |events| {
        snapshot_reads(events) >= 300
    });
    capture.kill();
    churn(&sql, 1).await;
    let mut capture = Capture::start(pipeline, &db.url, &flags);
    wait_for_active_slot(&sql, &mut capture).await;
    churn(&sql, 2).await;

    let expected = postgres_state(&sql, "item").await;
    let mut last = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        reader.drain(Duration::from_secs(1));
        last = final_state(&reader.events);
        if last == expected {
            break;
        }
    }
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !last.contains_key(*k))
        .take(10)
        .collect();
    let extra: Vec<_> = last
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .take(10)
        .collect();
    assert!(
        last == expected,
        "final state differs from Postgres: {} vs {} keys, missing {missing:?}, extra {extra:?}",
        last.len(),
        expected.len()
    );
    let reads = snapshot_reads(&reader.events);
    assert!(
        reads >= EXISTING as usize - 200,
        "only {reads} snapshot rows"
    );
    assert!(
        reader
            .events
            .iter()
            .all(|e| e.json["metadata"]["operation"] != "read"
                || e.json["metadata"].get("lsn").is_none()),
        "read rows carry no position"
    );

    let rows = wait_for_progress(&sql, "snapshot never done", |rows| {
        rows.first().is_some_and(|(_, state, _)| state == "done")
    })
    .await;
    assert_eq!(rows[0].0, "item");
    assert!(capture.terminate());

    // A table added to the pipeline later is snapshotted alone.
    sql.batch_execute(
        "CREATE TABLE extra (id int4 PRIMARY KEY, v int4 NOT NULL);
         INSERT INTO extra SELECT g, -g FROM generate_series(1, 100) g;",
    )
    .await
    .unwrap();
    file.rewrite(&["item", "extra"], true);
    let mut capture = Capture::start(pipeline, &db.url, &flags);
    wait_for_active_slot(&sql, &mut capture).await;
    let mut extra_reader = TopicReader::new(&format!("{prefix}.extra"));
    extra_reader.read_until(Duration::from_secs(60), |events| events.len() >= 100);
    assert_eq!(
        final_state(&extra_reader.events),
        postgres_state(&sql, "extra").await
    );
    let rows = wait_for_progress(&sql, "extra never done", |rows| {
        rows.iter().all(|(_, state, _)| state == "done") && rows.len() == 2
    })
    .await;
    assert_eq!(rows[0], ("extra".to_owned(), "done".to_owned(), 100));
    // The item table was not read again.
    let item_reads_before = reads;
    let mut item_again = TopicReader::new(&format!("{prefix}.item"));
    item_again.read_until(Duration::from_secs(60), |events| {
        events.len() >= reader.events.len()
    });
    let item_reads_after = snapshot_reads(&item_again.events);
    assert_eq!(
        item_reads_after, item_reads_before,
        "item was snapshotted again"
    );

    assert!(capture.terminate());
    db.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_recreated_by_the_operator_is_snapshotted_again_with_the_rows_written_meanwhile() {
    let (db, sql) = scratch_db(
        "capture_recreate",
        &["CREATE TABLE item (id int4 PRIMARY KEY, v int4 NOT NULL);
         INSERT INTO item SELECT g, g FROM generate_series(1, 50) g;"],
    )
    .await;
    let file = PipelineFile::new("recreate", &["item"], true);
    let (path, prefix) = (&file.path, &file.prefix);
    let pipeline: cdcstar_crds::CdcPipeline =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut capture = Capture::start(path, &db.url, &[]);
    wait_for_active_slot(&sql, &mut capture).await;
    let mut reader = TopicReader::new(&format!("{prefix}.item"));
    reader.read_until(Duration::from_secs(60), |events| events.len() >= 50);
    wait_for_progress(&sql, "first snapshot never done", |rows| {
        rows == [("item".to_owned(), "done".to_owned(), 50)]
    })
    .await;
    // The capture is held at zero (as the operator holds it while the slot is invalidated); changes
    // made now are the ones a lost slot no longer has.
    assert!(capture.terminate());
    sql.batch_execute(
        "INSERT INTO item SELECT g, g FROM generate_series(51, 70) g;
         UPDATE item SET v = -v WHERE id <= 5;",
    )
    .await
    .unwrap();
    for statement in cdcstar_crds::postgres::recreate_slot_statements(&pipeline) {
        sql.batch_execute(&statement).await.unwrap();
    }
    // Written after the new slot exists and before the capture reads anything: the stream carries
    // it and the snapshot, which starts later, reads it too (a row in both is applied idempotently).
    sql.execute("INSERT INTO item VALUES (71, 71)", &[])
        .await
        .unwrap();
    let mut capture = Capture::start(path, &db.url, &[]);
    wait_for_active_slot(&sql, &mut capture).await;

    let expected = postgres_state(&sql, "item").await;
    let reads_before = reader.events.len();
    let streamed_71 = |events: &[Consumed]| {
        events
            .iter()
            .any(|e| e.key.as_deref() == Some("71") && e.json["metadata"]["operation"] == "insert")
    };
    reader.read_until(Duration::from_secs(60), |events| {
        final_state(events) == expected
            && streamed_71(&events[reads_before..])
            && snapshot_reads(&events[reads_before..]) >= 71
    });
    let second: BTreeMap<String, Value> = final_state(
        &reader.events[reads_before..]
            .iter()
            .filter(|e| e.json["metadata"]["operation"] == "read")
            .cloned()
            .collect::<Vec<_>>(),
    );
    // Every row as Postgres had it when the snapshot ran, the gap's inserts and updates included.
    assert_eq!(second.len(), 71, "the second snapshot reads every row");
    assert_eq!(second["3"], json!({"id": 3, "v": -3}));
    assert_eq!(second["60"], json!({"id": 60, "v": 60}));
    assert_eq!(final_state(&reader.events), expected);
    wait_for_progress(&sql, "second snapshot never done", |rows| {
        rows == [("item".to_owned(), "done".to_owned(), 71)]
    })
    .await;
    assert!(capture.terminate());
    db.drop_all().await;
}
