//! Exclusion, masking and row filters (issue 21) against a real Postgres and broker: an excluded
//! column and a masked value never appear in a topic's messages, snapshot or stream, nor does the
//! unchanged-TOAST marker of an excluded column; `hash` is the salted HMAC of the value's text,
//! equal for equal values across rows and restarts; rows outside the row filter never reach the
//! topic, neither from the snapshot nor from the stream, and an update that moves a row out of the
//! filter arrives as a delete (one that moves it in as an insert).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use cdcstar_crds::pipeline::{ColumnMask, MaskKind, SourceTable};
use cdcstar_source::mask::{ColumnRules, MaskSalt};
use common::{Capture, Consumed, PipelineFile, TopicReader, scratch_db, wait_for_active_slot};

/// A pipeline file for `purpose` capturing `table` (key `id`) with the given `source.tables[0]`
/// extras and `replicaIdentityFull`.
fn pipeline_file(
    purpose: &str,
    table: &str,
    table_extras: &str,
    identity_full: bool,
) -> PipelineFile {
    let source_extras = format!(
        "    maskSaltSecretRef: {{name: salt, key: salt}}\n    replicaIdentityFull: {identity_full}\n"
    );
    PipelineFile::with(purpose, &[table], true, &source_extras, table_extras)
}

fn operations(events: &[Consumed]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e.json["metadata"]["operation"].as_str().unwrap().to_owned(),
                e.key.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_and_masked_columns_never_reach_the_topic_and_hashes_survive_a_restart() {
    // bio is large and random enough to be TOASTed out of line: an update that leaves it alone
    // sends it as "unchanged", which must not name the excluded column either.
    let (db, sql) = scratch_db(
        "capture_mask",
        &["CREATE TABLE person (id int4 PRIMARY KEY, email text, name text, ssn text, bio text, city text, tier int4);
         INSERT INTO person VALUES (1, 'jane@example.com', 'Jane Secret', '078-05-1120',
           (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 400)), 'Lyon', 1);"],
    )
    .await;
    let file = pipeline_file(
        "mask",
        "person",
        "        excludeColumns: [ssn, bio]
        mask:
          - {column: email, with: hash}
          - {column: name, with: redact}
          - {column: city, with: \"null\"}",
        false,
    );
    let salt = ["--mask-salt", "pipeline-salt"];
    let mut capture = Capture::start(&file.path, &db.url, &salt);
    wait_for_active_slot(&sql, &mut capture).await;
    sql.batch_execute(
        "INSERT INTO person VALUES (2, 'jane@example.com', 'Jane Again', '219-09-9999', 'short bio', 'Paris', 2);
         UPDATE person SET tier = 5 WHERE id = 1;
         INSERT INTO person VALUES (3, 'joe@example.com', NULL, NULL, NULL, NULL, 3);
         DELETE FROM person WHERE id = 3;",
    )
    .await
    .unwrap();
    let mut reader = TopicReader::new(&format!("{}.person", file.prefix));
    reader.read_until(Duration::from_secs(60), |events| events.len() >= 5);
    assert!(capture.terminate(), "the capture stops cleanly");

    // A restart with the same salt hashes the same value the same way.
    sql.batch_execute(
        "INSERT INTO person VALUES (4, 'jane@example.com', 'Jane Third', '1', 'b', 'Nice', 4);",
    )
    .await
    .unwrap();
    let mut capture = Capture::start(&file.path, &db.url, &salt);
    wait_for_active_slot(&sql, &mut capture).await;
    reader.read_until(Duration::from_secs(60), |events| {
        events.iter().any(|e| e.key.as_deref() == Some("4"))
    });
    reader.drain(Duration::from_secs(1));
    capture.kill();

    let mut table = SourceTable::new("person", "id");
    table.mask = vec![ColumnMask {
        column: "email".into(),
        with: MaskKind::Hash,
    }];
    let rules = ColumnRules::for_table(&table, Some(&MaskSalt::new("pipeline-salt"))).unwrap();
    let jane = rules.mask(MaskKind::Hash, b"jane@example.com");
    let joe = rules.mask(MaskKind::Hash, b"joe@example.com");
    assert_eq!(jane.as_str().unwrap().len(), 64);

    let events = &reader.events;
    assert_eq!(
        operations(events).into_iter().collect::<BTreeSet<_>>(),
        [
            ("read", "1"),
            ("insert", "2"),
            ("update", "1"),
            ("insert", "3"),
            ("delete", "3"),
            ("insert", "4")
        ]
        .into_iter()
        .map(|(op, key)| (op.to_owned(), key.to_owned()))
        .collect()
    );
    for event in events {
        for secret in [
            "jane@example.com",
            "joe@example.com",
            "Jane",
            "078-05-1120",
            "219-09-9999",
            "ssn",
            "bio",
            "Lyon",
            "Paris",
            "Nice",
        ] {
            assert!(
                !event.raw.contains(secret),
                "{secret:?} reached the topic: {}",
                event.raw
            );
        }
        let payload = event.json["payload"].as_object().unwrap();
        let keys: Vec<&str> = payload.keys().map(String::as_str).collect();
        let operation = event.json["metadata"]["operation"].as_str().unwrap();
        if operation == "delete" {
            // Default replica identity: the key and nulls.
            assert_eq!(
                keys,
                ["city", "email", "id", "name", "tier"],
                "{}",
                event.raw
            );
            continue;
        }
        assert_eq!(
            keys,
            ["city", "email", "id", "name", "tier"],
            "{}",
            event.raw
        );
        assert_eq!(payload["city"], serde_json::Value::Null);
        let expected_email = if event.key.as_deref() == Some("3") {
            &joe
        } else {
            &jane
        };
        assert_eq!(&payload["email"], expected_email, "{}", event.raw);
        let expected_name = if event.key.as_deref() == Some("3") {
            serde_json::Value::Null
        } else {
            "REDACTED".into()
        };
        assert_eq!(payload["name"], expected_name, "{}", event.raw);
        assert!(
            event.json["metadata"].get("unchangedToast").is_none(),
            "an excluded column is not even named as unchanged: {}",
            event.raw
        );
    }
    db.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_outside_the_filter_never_reach_the_topic_and_leaving_it_is_a_delete() {
    let (db, sql) = scratch_db(
        "capture_filter",
        &["CREATE TABLE ticket (id int4 PRIMARY KEY, status varchar(20), v int4);
         INSERT INTO ticket VALUES (1, 'open', 1), (2, 'closed', 1), (3, 'pending', 1), (4, NULL, 1);"],
    )
    .await;
    let file = pipeline_file(
        "filter",
        "ticket",
        "        rowFilter:
          - {column: status, op: in, values: [open, pending]}
          - {column: v, op: \"<\", value: \"100\"}",
        true,
    );
    let mut capture = Capture::start(&file.path, &db.url, &[]);
    wait_for_active_slot(&sql, &mut capture).await;
    for statement in [
        "INSERT INTO ticket VALUES (5, 'closed', 1)", // outside: never sent
        "INSERT INTO ticket VALUES (6, 'open', 1)",   // inside: insert
        "UPDATE ticket SET v = 2 WHERE id = 5",       // outside to outside: nothing
        "UPDATE ticket SET status = 'closed' WHERE id = 6", // leaves: delete
        "UPDATE ticket SET status = 'open' WHERE id = 2", // enters: insert
        "UPDATE ticket SET v = 500 WHERE id = 3",     // leaves through the second condition
        "DELETE FROM ticket WHERE id = 5",            // outside: nothing
        "INSERT INTO ticket VALUES (7, 'pending', 7)", // the last one, inside
    ] {
        sql.batch_execute(statement).await.unwrap();
    }
    let mut reader = TopicReader::new(&format!("{}.ticket", file.prefix));
    reader.read_until(Duration::from_secs(60), |events| {
        events.iter().any(|e| e.key.as_deref() == Some("7")) && events.len() >= 7
    });
    reader.drain(Duration::from_secs(2));
    capture.kill();

    // By key, then operation name (keys may sit on different partitions).
    let mut seen = operations(&reader.events);
    seen.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    let expected: Vec<(String, String)> = [
        ("read", "1"),
        ("insert", "2"),
        ("delete", "3"),
        ("read", "3"),
        ("delete", "6"),
        ("insert", "6"),
        ("insert", "7"),
    ]
    .into_iter()
    .map(|(op, key)| (op.to_owned(), key.to_owned()))
    .collect();
    assert_eq!(seen, expected, "{:#?}", reader.events);
    // The update moving 6 out of the filter is a delete carrying the whole old row (replica
    // identity full), after its insert.
    let delete = reader
        .events
        .iter()
        .find(|e| e.key.as_deref() == Some("6") && e.json["metadata"]["operation"] == "delete")
        .unwrap();
    assert_eq!(delete.json["payload"]["status"], "open", "{}", delete.raw);
    db.drop_all().await;
}
