//! The capture against a real Postgres and broker: the exact envelope bytes of every supported type
//! for inserts, updates and deletes, a column added mid-stream, and unchanged TOAST values.

mod common;

use std::time::Duration;

use common::{Consumed, TopicReader, scratch_db, start_streaming};

/// The metadata block the capture writes, with the positions the event actually carries (they
/// are checked for shape here and compared byte for byte through the rebuilt string).
fn expected(event: &Consumed, table: &str, operation: &str, payload: &str) -> String {
    let metadata = &event.json["metadata"];
    let lsn = metadata["lsn"].as_str().expect("lsn present");
    let commit_lsn = metadata["commitLsn"].as_str().expect("commitLsn present");
    let commit_time = metadata["commitTime"].as_str().expect("commitTime present");
    let tx_seq = metadata["txSeq"].as_u64().expect("txSeq present");
    for position in [lsn, commit_lsn] {
        let (high, low) = position.split_once('/').expect("LSN has two halves");
        assert!(u32::from_str_radix(high, 16).is_ok() && u32::from_str_radix(low, 16).is_ok());
    }
    assert!(
        chrono::DateTime::parse_from_rfc3339(commit_time).is_ok() && commit_time.len() == 27,
        "commitTime {commit_time} is RFC 3339 with microseconds"
    );
    format!(
        r#"{{"metadata":{{"table":"{table}","operation":"{operation}","lsn":"{lsn}","commitLsn":"{commit_lsn}","txSeq":{tx_seq},"commitTime":"{commit_time}"}},"payload":{payload}}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_inserted_updated_and_deleted_has_exact_envelope_bytes() {
    let (db, sql) = scratch_db(
        "capture_types",
        &[r#"CREATE TABLE everything (
             id int8 PRIMARY KEY, small int2, regular int4, amount numeric(12,2), ratio float4,
             score float8, flag bool, label text, code varchar(10), created timestamp(6),
             seen timestamptz, birthday date, token uuid, doc jsonb, raw json, tags text[],
             counts int4[], grid int8[][])"#],
    )
    .await;
    let (_dir, prefix, _, capture) = start_streaming(&db, &sql, "types", &["everything"]).await;

    // One transaction per statement.
    for statement in [
        r#"INSERT INTO everything VALUES (1, -3, 42, 12.50, 1.5, 'NaN', true, 'héllo "q"', 'ab',
             '2024-01-02 03:04:05.120', '2024-01-02 03:04:05+02', '2024-02-29',
             'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"b": [1, 2], "a": null}', '{"z":1}',
             '{a,"b c",NULL}', '{1,2}', '{{1,2},{3,4}}')"#,
        "UPDATE everything SET label = NULL, amount = 0.10, flag = false, score = -2.25 WHERE id = 1",
        "ALTER TABLE everything ADD COLUMN extra int4",
        "INSERT INTO everything (id, extra) VALUES (2, 5)",
        "DELETE FROM everything WHERE id = 1",
    ] {
        sql.batch_execute(statement).await.unwrap();
    }

    let mut reader = TopicReader::new(&format!("{prefix}.everything"));
    reader.read_until(Duration::from_secs(60), |events| events.len() >= 4);
    let mut events = reader.events.clone();
    // Keys 1 and 2 may sit on different partitions: order by position for the assertions.
    events.sort_by_key(|e| common::version_of(&e.json));
    let [insert, update, insert_extra, delete] = &events[..] else {
        panic!("expected 4 events, got {events:#?}");
    };

    let full_row = r#"{"amount":"12.50","birthday":"2024-02-29","code":"ab","counts":[1,2],"created":"2024-01-02T03:04:05.12Z","doc":{"a":null,"b":[1,2]},"flag":true,"grid":[[1,2],[3,4]],"id":1,"label":"héllo \"q\"","ratio":1.5,"raw":{"z":1},"regular":42,"score":"NaN","seen":"2024-01-02T01:04:05Z","small":-3,"tags":["a","b c",null],"token":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}"#;
    assert_eq!(
        insert.raw,
        expected(insert, "everything", "insert", full_row)
    );
    assert_eq!(insert.key.as_deref(), Some("1"));

    let updated_row = r#"{"amount":"0.10","birthday":"2024-02-29","code":"ab","counts":[1,2],"created":"2024-01-02T03:04:05.12Z","doc":{"a":null,"b":[1,2]},"flag":false,"grid":[[1,2],[3,4]],"id":1,"label":null,"ratio":1.5,"raw":{"z":1},"regular":42,"score":-2.25,"seen":"2024-01-02T01:04:05Z","small":-3,"tags":["a","b c",null],"token":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}"#;
    assert_eq!(
        update.raw,
        expected(update, "everything", "update", updated_row)
    );

    // The column added mid-stream is in the payload of the next change.
    let extra_row = r#"{"amount":null,"birthday":null,"code":null,"counts":null,"created":null,"doc":null,"extra":5,"flag":null,"grid":null,"id":2,"label":null,"ratio":null,"raw":null,"regular":null,"score":null,"seen":null,"small":null,"tags":null,"token":null}"#;
    assert_eq!(
        insert_extra.raw,
        expected(insert_extra, "everything", "insert", extra_row)
    );
    assert_eq!(insert_extra.key.as_deref(), Some("2"));

    // A delete under the default replica identity: the key, every other column null.
    let deleted_row = r#"{"amount":null,"birthday":null,"code":null,"counts":null,"created":null,"doc":null,"extra":null,"flag":null,"grid":null,"id":1,"label":null,"ratio":null,"raw":null,"regular":null,"score":null,"seen":null,"small":null,"tags":null,"token":null}"#;
    assert_eq!(
        delete.raw,
        expected(delete, "everything", "delete", deleted_row)
    );
    assert_eq!(delete.key.as_deref(), Some("1"));

    // One transaction per statement here: each change is the first of its transaction, and
    // commit positions grow with the statement order.
    assert!(events.iter().all(|e| e.json["metadata"]["txSeq"] == 0));
    assert!(capture.terminate(), "graceful shutdown exits successfully");
    db.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_toast_is_listed_under_default_identity_and_filled_under_full() {
    let (db, sql) = scratch_db(
        "capture_toast",
        &[
            "CREATE TABLE note (id int4 PRIMARY KEY, title text, body text);
         CREATE TABLE note_full (id int4 PRIMARY KEY, title text, body text);
         ALTER TABLE note_full REPLICA IDENTITY FULL;",
        ],
    )
    .await;
    let (_dir, prefix, _, capture) =
        start_streaming(&db, &sql, "toast", &["note", "note_full"]).await;

    // ~20 kB of poorly compressible text: stored out of line (TOASTed).
    let body: String = sql
        .query_one(
            "SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 640)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    for table in ["note", "note_full"] {
        sql.execute(
            &format!("INSERT INTO {table} VALUES (1, 'first', $1)"),
            &[&body],
        )
        .await
        .unwrap();
        sql.batch_execute(&format!("UPDATE {table} SET title = 'second' WHERE id = 1"))
            .await
            .unwrap();
    }

    let mut plain = TopicReader::new(&format!("{prefix}.note"));
    plain.read_until(Duration::from_secs(60), |events| events.len() >= 2);
    let update = &plain.events[1].json;
    assert_eq!(update["metadata"]["operation"], "update");
    assert_eq!(
        update["metadata"]["unchangedToast"],
        serde_json::json!(["body"])
    );
    assert!(
        update["payload"].get("body").is_none(),
        "an unchanged TOAST value is absent, not null"
    );
    assert_eq!(update["payload"]["title"], "second");
    assert_eq!(plain.events[0].json["payload"]["body"], body.as_str());

    let mut full = TopicReader::new(&format!("{prefix}.note_full"));
    full.read_until(Duration::from_secs(60), |events| events.len() >= 2);
    let update = &full.events[1].json;
    assert!(update["metadata"].get("unchangedToast").is_none());
    assert_eq!(
        update["payload"]["body"],
        body.as_str(),
        "filled from the old row"
    );

    assert!(capture.terminate());
    db.drop_all().await;
}

#[tokio::test]
async fn truncate_reaches_every_partition_after_the_rows_before_it() {
    let (db, sql) = scratch_db(
        "capture_truncate",
        &["CREATE TABLE shelf (id int4 PRIMARY KEY, label text)"],
    )
    .await;
    let (_dir, prefix, _, capture) = start_streaming(&db, &sql, "truncate", &["shelf"]).await;
    sql.batch_execute(
        "INSERT INTO shelf SELECT g, 'x' FROM generate_series(1, 6) g;
         TRUNCATE shelf;
         INSERT INTO shelf VALUES (7, 'after');",
    )
    .await
    .unwrap();

    let mut reader = TopicReader::new(&format!("{prefix}.shelf"));
    reader.read_until(Duration::from_secs(60), |events| events.len() > 6 + 3);
    let truncates: Vec<&Consumed> = reader
        .events
        .iter()
        .filter(|e| e.json["metadata"]["operation"] == "truncate")
        .collect();
    let mut partitions: Vec<i32> = truncates.iter().map(|e| e.partition).collect();
    partitions.sort_unstable();
    assert_eq!(partitions, [0, 1, 2], "one truncate per partition");
    let truncate_lsn: cdcstar_crds::Lsn = truncates[0].json["metadata"]["lsn"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    for event in &truncates {
        assert_eq!(event.json["payload"], serde_json::json!({}));
        assert_eq!(event.json["metadata"]["table"], "shelf");
        assert!(event.key.is_none());
    }
    // Every insert before it has a lower LSN and the one after a higher one.
    for event in reader
        .events
        .iter()
        .filter(|e| e.json["metadata"]["operation"] == "insert")
    {
        let lsn: cdcstar_crds::Lsn = event.json["metadata"]["lsn"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let after = event.json["payload"]["id"] == 7;
        assert_eq!(lsn > truncate_lsn, after, "{}", event.raw);
    }
    drop(capture);
}
