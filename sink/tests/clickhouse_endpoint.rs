//! Proves the ClickHouse endpoint at `CLICKHOUSE_URL` speaks what the sink needs from the `clickhouse`
//! crate: typed inserts with schema validation and LZ4 compression (several compressed blocks per
//! request), the batching `Inserter`, a `ReplacingMergeTree(lsn, is_deleted)` read back with `FINAL`,
//! server-side query parameters, statements of hundreds of kilobytes whose literals hold `FORMAT` and
//! `;`, and ClickHouse exceptions surfacing in the crate's errors.
//!
//! Locally the endpoint is the real ClickHouse engine (chdb) behind `scripts/clickhouse_http.py`; point
//! `CLICKHOUSE_URL` at a real server to run the same checks there. Each test works in its own database.

use cdcstar_testkit::{required_env, unique};
use clickhouse::{Client, Compression, Row};
use serde::{Deserialize, Serialize};

const TABLE: &str = "customer_dim";

/// One version of a dimension row, as the sink writes it.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
struct CustomerVersion {
    id: u64,
    name: String,
    lsn: u64,
    is_deleted: u8,
}

impl CustomerVersion {
    fn new(id: u64, name: &str, lsn: u64) -> Self {
        Self {
            id,
            name: name.to_owned(),
            lsn,
            is_deleted: 0,
        }
    }

    fn deleted(id: u64, lsn: u64) -> Self {
        Self {
            id,
            name: String::new(),
            lsn,
            is_deleted: 1,
        }
    }
}

/// The same table read with a wrong column type: validation must reject it.
#[derive(Debug, Row, Deserialize)]
#[expect(
    dead_code,
    reason = "only decoded, to prove that validation rejects it"
)]
struct CustomerWithWrongLsnType {
    id: u64,
    name: String,
    lsn: i32,
    is_deleted: u8,
}

/// A database of its own for one test, so tests run in parallel and repeat cleanly.
struct ScratchDatabase {
    server: Client,
    name: String,
}

impl ScratchDatabase {
    async fn create(purpose: &str) -> Self {
        let name = unique(&format!("cdcstar_it_{purpose}"));
        let server = Client::default()
            .with_url(required_env("CLICKHOUSE_URL"))
            .with_compression(Compression::Lz4)
            .with_validation(true);
        server
            .query(&format!("CREATE DATABASE {name}"))
            .execute()
            .await
            .unwrap_or_else(|err| panic!("failed to create database {name}: {err}"));
        Self { server, name }
    }

    fn client(&self) -> Client {
        self.server.clone().with_database(&self.name)
    }

    /// [`Self::create`], holding an empty [`TABLE`] of [`CustomerVersion`]s.
    async fn with_customer_table(purpose: &str) -> Self {
        let db = Self::create(purpose).await;
        db.client()
            .query(&format!(
                "CREATE TABLE {TABLE} (id UInt64, name String, lsn UInt64, is_deleted UInt8) \
                 ENGINE = ReplacingMergeTree(lsn, is_deleted) ORDER BY id"
            ))
            .execute()
            .await
            .expect("failed to create the ReplacingMergeTree table");
        db
    }

    async fn drop(self) {
        self.server
            .query(&format!("DROP DATABASE {}", self.name))
            .execute()
            .await
            .unwrap_or_else(|err| panic!("failed to drop database {}: {err}", self.name));
    }
}

async fn insert_rows(client: &Client, rows: &[CustomerVersion]) {
    let mut insert = client
        .insert::<CustomerVersion>(TABLE)
        .await
        .expect("failed to start the insert");
    for row in rows {
        insert.write(row).await.expect("failed to write a row");
    }
    insert.end().await.expect("failed to finish the insert");
}

async fn read_final(client: &Client, max_id: u64) -> Vec<CustomerVersion> {
    client
        .query(&format!(
            "SELECT ?fields FROM {TABLE} FINAL WHERE id <= ? ORDER BY id"
        ))
        .bind(max_id)
        .fetch_all::<CustomerVersion>()
        .await
        .expect("failed to read the table with FINAL")
}

#[tokio::test]
async fn final_keeps_newest_version_and_hides_deleted_rows() {
    let db = ScratchDatabase::with_customer_table("final").await;
    let client = db.client();

    // ~2 MiB of rows: the crate sends them as several LZ4 blocks in one chunked request.
    const BULK: u64 = 30_000;
    let bulk: Vec<_> = (1..=BULK)
        .map(|id| CustomerVersion::new(id, &format!("customer number {id:>20}"), 100))
        .collect();
    insert_rows(&client, &bulk).await;

    // Two versions of one key inside a single insert: the higher lsn wins.
    insert_rows(
        &client,
        &[
            CustomerVersion::new(4, "fourth, older", 300),
            CustomerVersion::new(4, "fourth, newer", 301),
        ],
    )
    .await;

    // Later changes through the batching inserter: an update, a delete, and a stale replay.
    let mut inserter = client.inserter::<CustomerVersion>(TABLE).with_max_rows(2);
    for change in [
        CustomerVersion::new(1, "renamed", 200),
        CustomerVersion::deleted(2, 200),
        CustomerVersion::new(3, "stale replay", 50),
    ] {
        inserter
            .write(&change)
            .await
            .expect("inserter failed to write a change");
        inserter.commit().await.expect("inserter failed to commit");
    }
    let last_batch = inserter.end().await.expect("inserter failed to end");
    assert_eq!(last_batch.rows, 1, "the third change is flushed by end()");

    assert_eq!(
        read_final(&client, 5).await,
        vec![
            CustomerVersion::new(1, "renamed", 200),
            CustomerVersion::new(3, &format!("customer number {:>20}", 3), 100),
            CustomerVersion::new(4, "fourth, newer", 301),
            CustomerVersion::new(5, &format!("customer number {:>20}", 5), 100),
        ]
    );
    let live = client
        .query(&format!("SELECT count() FROM {TABLE} FINAL"))
        .fetch_one::<u64>()
        .await
        .expect("failed to count live rows");
    assert_eq!(live, BULK - 1, "every key but the deleted one is live");

    db.drop().await;
}

#[tokio::test]
async fn server_side_parameters_are_substituted_by_the_server() {
    let db = ScratchDatabase::with_customer_table("params").await;
    let client = db.client();
    insert_rows(
        &client,
        &[
            CustomerVersion::new(1, "ann", 1),
            CustomerVersion::new(2, "it's \"quoted\"\tand\\escaped", 1),
            CustomerVersion::new(3, "carl", 1),
        ],
    )
    .await;

    let rows = client
        .query(&format!("SELECT ?fields FROM {TABLE} FINAL WHERE id >= {{min_id:UInt64}} AND name != {{skip:String}} ORDER BY id"))
        .param("min_id", 2_u64)
        .param("skip", "carl")
        .fetch_all::<CustomerVersion>()
        .await
        .expect("failed to run the parameterised query");
    assert_eq!(
        rows,
        vec![CustomerVersion::new(2, "it's \"quoted\"\tand\\escaped", 1)]
    );

    let found = client
        .query(&format!(
            "SELECT id FROM {TABLE} WHERE name = {{name:String}}"
        ))
        .param("name", "it's \"quoted\"\tand\\escaped")
        .fetch_all::<u64>()
        .await
        .expect("failed to match a string parameter with special characters");
    assert_eq!(found, vec![2]);

    db.drop().await;
}

#[tokio::test]
async fn long_statements_with_quoted_look_alikes_answer_in_the_clients_format() {
    let db = ScratchDatabase::create("literals").await;
    // The shape of the sink's propagation statements: key lists of tens of thousands of keys in
    // string literals, here beside literals and identifiers that hold `FORMAT`, `;`, doubled and
    // escaped quotes. The endpoint must neither end the statement nor pick an output format in them.
    let keys: Vec<String> = (0..50_000_u64).map(|k| k.to_string()).collect();
    let sql = format!(
        "SELECT count(), sum(k), length('FORMAT JSON; it''s \\' FORMAT CSV') AS `FORMAT ;` \
         FROM (SELECT arrayJoin(JSONExtract('[{}]', 'Array(UInt64)')) AS k) \
         WHERE k IN ({})",
        keys.join(","),
        keys.join(", ")
    );
    let answer = db
        .client()
        .with_option("max_query_size", "10000000")
        .query(&sql)
        .fetch_one::<(u64, u64, u64)>()
        .await
        .expect("failed to run the long statement");
    assert_eq!(answer, (50_000, 49_999 * 50_000 / 2, 30));
    db.drop().await;
}

#[tokio::test]
async fn unknown_table_error_carries_the_clickhouse_exception() {
    let db = ScratchDatabase::create("errors").await;
    let client = db.client();

    let select = client
        .query("SELECT ?fields FROM no_such_table")
        .fetch_all::<CustomerVersion>()
        .await
        .expect_err("selecting from a missing table must fail");
    let message = select.to_string();
    assert!(
        message.contains("Code: 60") && message.contains("UNKNOWN_TABLE"),
        "unexpected error: {message}"
    );

    let insert = match client.insert::<CustomerVersion>("no_such_table").await {
        Ok(_) => panic!("a validated insert into a missing table must fail"),
        Err(err) => err.to_string(),
    };
    assert!(insert.contains("Code: 60"), "unexpected error: {insert}");

    db.drop().await;
}

#[tokio::test]
async fn validation_rejects_a_row_type_that_does_not_match_the_table() {
    let db = ScratchDatabase::with_customer_table("validation").await;
    let client = db.client();
    insert_rows(&client, &[CustomerVersion::new(1, "ann", 1)]).await;

    let err = client
        .query(&format!("SELECT ?fields FROM {TABLE}"))
        .fetch_all::<CustomerWithWrongLsnType>()
        .await
        .expect_err("an i32 field must not decode a UInt64 column");
    assert!(
        err.to_string().contains("lsn"),
        "the error names the column: {err}"
    );

    db.drop().await;
}

/// Throughput of 100k-row typed inserts (RowBinaryWithNamesAndTypes, LZ4) through the endpoint.
/// A measurement, not a check of speed: run it with
/// `cargo test -p cdcstar-sink --test clickhouse_endpoint -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "benchmark: prints insert throughput"]
async fn bench_insert_throughput_100k_rows() {
    const ROWS: u64 = 100_000;
    const ROUNDS: u64 = 3;
    let db = ScratchDatabase::with_customer_table("bench").await;
    let client = db.client();
    let rows: Vec<_> = (0..ROWS)
        .map(|id| CustomerVersion::new(id, &format!("customer {id}"), 1))
        .collect();

    let mut best = f64::MAX;
    for round in 0..ROUNDS {
        let started = std::time::Instant::now();
        insert_rows(&client, &rows).await;
        let seconds = started.elapsed().as_secs_f64();
        best = best.min(seconds);
        println!(
            "round {round}: {ROWS} rows in {seconds:.3}s = {:.0} rows/s",
            ROWS as f64 / seconds
        );
    }
    println!("best: {:.0} rows/s", ROWS as f64 / best);

    let stored = client
        .query(&format!("SELECT count() FROM {TABLE}"))
        .fetch_one::<u64>()
        .await
        .expect("failed to count inserted rows");
    assert_eq!(stored, ROWS * ROUNDS, "every inserted row is stored");
    db.drop().await;
}
