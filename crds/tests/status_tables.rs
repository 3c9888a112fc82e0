//! The status tables on the real engine (CLICKHOUSE_URL): created as declared (so a second pass finds
//! nothing to change), written with the statement the sink uses, read with the queries the operator
//! uses, and a pipeline's rows deleted without touching another pipeline's. Each test works in its own
//! database.

mod common;

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::clickhouse_ddl::{EXISTING_COLUMNS_QUERY, Migration, install_statements};
use cdcstar_crds::clickhouse_placement::Placement;
use cdcstar_crds::status_tables::{
    PARTITION_POSITIONS, STATUS_TABLES, VALUE_ADJUSTMENTS, value_adjustments_query, watermark_query,
};
use clickhouse::Client;
use serde::Deserialize;

fn client() -> Client {
    Client::default().with_url(common::required_env("CLICKHOUSE_URL"))
}

async fn run(client: &Client, statement: &str) {
    client
        .query(statement)
        .execute()
        .await
        .unwrap_or_else(|e| panic!("{statement}\nfailed: {e}"));
}

/// The example pipeline with its tables installed in a database of its own.
async fn installed(client: &Client) -> CdcPipeline {
    let mut pipeline = common::shop_pipeline();
    pipeline.spec.clickhouse.database = common::unique("crds_status");
    for statement in install_statements(&pipeline).unwrap() {
        run(client, &statement).await;
    }
    pipeline
}

/// Sends `rows` (JSONEachRow) with the table's insert statement, into `database`.
async fn insert(client: &Client, database: &str, statement: String, rows: &str) {
    let mut insert = client
        .clone()
        .with_database(database)
        .insert_formatted_with(statement);
    insert.send(rows.to_owned().into()).await.unwrap();
    insert.end().await.unwrap();
}

#[tokio::test]
async fn status_tables_are_created_as_declared() {
    let client = client();
    let pipeline = installed(&client).await;
    let database = pipeline.clickhouse_database();
    for table in STATUS_TABLES {
        let existing: Vec<(String, String)> = client
            .query(EXISTING_COLUMNS_QUERY)
            .param("database", database)
            .param("table", table.name)
            .fetch_all()
            .await
            .unwrap();
        assert_eq!(
            table.migrate_from(&Placement::default(), database, Some(&existing)),
            Migration::default(),
            "{} as ClickHouse prints it: {existing:?}",
            table.name
        );
    }
    run(&client, &format!("DROP DATABASE `{database}`")).await;
}

#[derive(Debug, PartialEq, clickhouse::Row, Deserialize)]
struct Adjustment {
    table: String,
    column: String,
    policy: String,
    values: u64,
    last_seen_ms: i64,
}

#[tokio::test]
async fn adjustments_are_summed_per_column_and_policy_and_deleted_per_pipeline() {
    let client = client();
    let pipeline = installed(&client).await;
    let database = pipeline.clickhouse_database();
    // Two inserts, as two flushes of sinks write them.
    let adjusted = [
        [
            (
                "default/shop",
                "order_date",
                "clamp",
                3,
                "2026-01-01 10:00:00.250",
            ),
            (
                "other/shop",
                "order_date",
                "clamp",
                7,
                "2026-01-01 12:00:00.000",
            ),
        ],
        [
            (
                "default/shop",
                "order_date",
                "clamp",
                2,
                "2026-01-01 09:00:00.000",
            ),
            (
                "default/shop",
                "total",
                "null",
                1,
                "2026-01-01 08:00:00.000",
            ),
        ],
    ];
    for rows in adjusted {
        let rows: String = rows
            .iter()
            .map(|(pipeline, column, policy, values, last_seen)| {
                format!(
                    "{}\n",
                    serde_json::json!({
                        "pipeline": pipeline, "table": "order_fact", "column": column,
                        "policy": policy, "values": values, "last_seen": last_seen,
                    })
                )
            })
            .collect();
        insert(
            &client,
            database,
            VALUE_ADJUSTMENTS.insert_statement(),
            &rows,
        )
        .await;
    }
    let read = || async {
        client
            .query(&value_adjustments_query(database))
            .param("pipeline", "default/shop")
            .fetch_all::<Adjustment>()
            .await
            .unwrap()
    };
    let expected = vec![
        Adjustment {
            table: "order_fact".into(),
            column: "order_date".into(),
            policy: "clamp".into(),
            values: 5,
            last_seen_ms: 1_767_261_600_250,
        },
        Adjustment {
            table: "order_fact".into(),
            column: "total".into(),
            policy: "null".into(),
            values: 1,
            last_seen_ms: 1_767_254_400_000,
        },
    ];
    assert_eq!(read().await, expected);
    // Merged, the table holds what the query computed before.
    run(
        &client,
        &format!(
            "OPTIMIZE TABLE {} FINAL",
            VALUE_ADJUSTMENTS.qualified_name(database)
        ),
    )
    .await;
    assert_eq!(read().await, expected);

    run(
        &client,
        &VALUE_ADJUSTMENTS.delete_statement(&pipeline).unwrap(),
    )
    .await;
    assert_eq!(read().await, []);
    let others: u64 = client
        .query(&format!(
            "SELECT sum(`values`) FROM {}",
            VALUE_ADJUSTMENTS.qualified_name(database)
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(others, 7, "another pipeline's rows stay");
    run(&client, &format!("DROP DATABASE `{database}`")).await;
}

#[derive(Debug, PartialEq, clickhouse::Row, Deserialize)]
struct Watermark {
    commit_lsn: u64,
    commit_time_us: i64,
    partitions: u64,
}

/// One position row as the sink writes it.
fn position(pipeline: &str, topic: &str, partition: i32, lsn: u64, time: &str) -> String {
    format!(
        r#"{{"pipeline":"{pipeline}","topic":"{topic}","partition":{partition},"commit_lsn":{lsn},"commit_time":"{time}","applied_at":"2026-01-01 00:00:00.000"}}"#
    ) + "\n"
}

#[tokio::test]
async fn the_watermark_is_the_lowest_partitions_highest_position() {
    let client = client();
    let pipeline = installed(&client).await;
    let database = pipeline.clickhouse_database();
    let read = |pipeline: &'static str| {
        let client = client.clone();
        let query = watermark_query(database);
        async move {
            client
                .query(&query)
                .param("pipeline", pipeline)
                .fetch_all::<Watermark>()
                .await
                .unwrap()
        }
    };
    assert_eq!(read("default/shop").await, [], "no row before any position");

    // The sink's start: every partition at zero.
    let mut zeros = String::new();
    for (topic, partition) in [("shop.order", 0), ("shop.order", 1), ("shop.customer", 0)] {
        zeros += &position(
            "default/shop",
            topic,
            partition,
            0,
            "1970-01-01 00:00:00.000000",
        );
    }
    insert(
        &client,
        database,
        PARTITION_POSITIONS.insert_statement(),
        &zeros,
    )
    .await;
    // Two partitions applied something; shop.order/1 did not yet: the watermark stays at zero.
    let flushed = position(
        "default/shop",
        "shop.order",
        0,
        0x30,
        "2026-01-01 10:00:03.000003",
    ) + &position(
        "default/shop",
        "shop.customer",
        0,
        0x20,
        "2026-01-01 10:00:02.000002",
    ) + &position(
        "other/shop",
        "shop.order",
        1,
        0x99,
        "2026-01-01 11:00:00.000000",
    );
    insert(
        &client,
        database,
        PARTITION_POSITIONS.insert_statement(),
        &flushed,
    )
    .await;
    assert_eq!(
        read("default/shop").await,
        [Watermark {
            commit_lsn: 0,
            commit_time_us: 0,
            partitions: 3
        }]
    );
    // The last partition catches up (a heartbeat); a replay writes a lower position again.
    let caught_up = position(
        "default/shop",
        "shop.order",
        1,
        0x40,
        "2026-01-01 10:00:04.000000",
    ) + &position(
        "default/shop",
        "shop.order",
        0,
        0x10,
        "2026-01-01 10:00:01.000000",
    );
    insert(
        &client,
        database,
        PARTITION_POSITIONS.insert_statement(),
        &caught_up,
    )
    .await;
    let expected = [Watermark {
        commit_lsn: 0x20,
        commit_time_us: 1_767_261_602_000_002,
        partitions: 3,
    }];
    assert_eq!(read("default/shop").await, expected);
    run(
        &client,
        &format!(
            "OPTIMIZE TABLE {} FINAL",
            PARTITION_POSITIONS.qualified_name(database)
        ),
    )
    .await;
    assert_eq!(read("default/shop").await, expected, "merged, the same");
    assert_eq!(
        read("other/shop").await,
        [Watermark {
            commit_lsn: 0x99,
            commit_time_us: 1_767_265_200_000_000,
            partitions: 1
        }]
    );
    run(&client, &format!("DROP DATABASE `{database}`")).await;
}
