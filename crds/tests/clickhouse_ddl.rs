//! The generated ClickHouse DDL on the real engine (CLICKHOUSE_URL): a fresh install, its idempotence,
//! the ADD COLUMN path on a table holding data, drift reporting and removal. Each test works in its own
//! database. The statements of a cluster (`ON CLUSTER`, replicated and distributed tables) are parsed
//! by the engine; the local engine has no cluster to run them on.

mod common;

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::clickhouse_ddl::{
    EXISTING_COLUMNS_QUERY, Migration, TableSchema, drop_statements, install_statements,
    table_schemas,
};
use cdcstar_crds::status_tables::{STATUS_TABLES, delete_statements};
use clickhouse::Client;

fn client() -> Client {
    Client::default().with_url(common::required_env("CLICKHOUSE_URL"))
}

/// The example pipeline writing to a database of its own.
fn pipeline_in_scratch_database() -> CdcPipeline {
    let mut pipeline = common::shop_pipeline();
    pipeline.spec.clickhouse.database = common::unique("crds_ddl");
    pipeline
}

/// A client of the test ClickHouse, on which the tables of `pipeline` are installed.
async fn installed(pipeline: &CdcPipeline) -> Client {
    let client = client();
    run(&client, &install_statements(pipeline).unwrap()).await;
    client
}

async fn run(client: &Client, statements: &[String]) {
    for statement in statements {
        client
            .query(statement)
            .execute()
            .await
            .unwrap_or_else(|e| panic!("{statement}\nfailed: {e}"));
    }
}

/// The table's columns as `system.columns` lists them, or `None` when it does not exist.
async fn existing_columns(client: &Client, table: &TableSchema) -> Option<Vec<(String, String)>> {
    let columns = client
        .query(EXISTING_COLUMNS_QUERY)
        .param("database", &table.database)
        .param("table", &table.name)
        .fetch_all::<(String, String)>()
        .await
        .expect("system.columns is readable");
    (!columns.is_empty()).then_some(columns)
}

async fn migration_of(client: &Client, table: &TableSchema) -> Migration {
    let existing = existing_columns(client, table).await;
    table.migrate_from(existing.as_deref())
}

/// How ClickHouse shows the engine of `table` in the pipeline's database (`engine_full`).
async fn engine_of(client: &Client, pipeline: &CdcPipeline, table: &str) -> String {
    client
        .query("SELECT engine_full FROM system.tables WHERE database = ? AND name = ?")
        .bind(pipeline.clickhouse_database())
        .bind(table)
        .fetch_one()
        .await
        .unwrap()
}

async fn drop_database(client: &Client, database: &str) {
    run(client, &[format!("DROP DATABASE IF EXISTS `{database}`")]).await;
}

#[tokio::test]
async fn fresh_install_runs_and_applying_it_again_changes_nothing() {
    let client = client();
    let pipeline = pipeline_in_scratch_database();
    let statements = install_statements(&pipeline).unwrap();
    run(&client, &statements).await;
    run(&client, &statements).await;

    // Every table now matches its schema exactly: ClickHouse prints each type the way the spec's
    // canonical form does (Decimal(12, 2), LowCardinality(String), DateTime64(6), ...).
    for table in table_schemas(&pipeline).unwrap() {
        assert_eq!(
            migration_of(&client, &table).await,
            Migration::default(),
            "{} differs from its schema after install",
            table.name
        );
    }
    let engine = engine_of(&client, &pipeline, "orderitem_fact").await;
    assert!(
        engine.starts_with("ReplacingMergeTree(lsn, is_deleted) ORDER BY (orderitem_id)"),
        "{engine}"
    );
    drop_database(&client, pipeline.clickhouse_database()).await;
}

#[tokio::test]
async fn deleted_rows_disappear_under_final() {
    let pipeline = pipeline_in_scratch_database();
    let client = installed(&pipeline).await;
    let table = format!("`{}`.`product_dim`", pipeline.clickhouse_database());
    run(
        &client,
        &[
            format!("INSERT INTO {table} (product_id, name, lsn, is_deleted) VALUES (1, 'old', 10, 0), (2, 'kept', 11, 0)"),
            format!("INSERT INTO {table} (product_id, name, lsn, is_deleted) VALUES (1, 'new', 20, 0)"),
            format!("INSERT INTO {table} (product_id, name, lsn, is_deleted) VALUES (2, '', 30, 1)"),
        ],
    )
    .await;
    let rows: Vec<(u64, String)> = client
        .query(&format!(
            "SELECT product_id, name FROM {table} FINAL ORDER BY product_id"
        ))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(rows, [(1, "new".to_owned())]);
    drop_database(&client, pipeline.clickhouse_database()).await;
}

#[tokio::test]
async fn new_columns_are_added_to_a_table_holding_data() {
    let client = client();
    let mut before = pipeline_in_scratch_database();
    // The first version of the spec has no created_at in customer_dim.
    before.spec.star_schema.dimensions[0]
        .columns
        .retain(|c| c.name != "created_at");
    run(&client, &install_statements(&before).unwrap()).await;
    let table = format!("`{}`.`customer_dim`", before.clickhouse_database());
    run(
        &client,
        &[format!(
            "INSERT INTO {table} (customer_id, email, name, country, city, lsn, is_deleted) \
             VALUES (7, 'jane@example.com', 'Jane', 'FR', 'Paris', 100, 0)"
        )],
    )
    .await;

    let mut after = before.clone();
    after.spec.star_schema = common::shop_pipeline().spec.star_schema;
    let customer = table_schemas(&after).unwrap().remove(0);
    assert_eq!(customer.name, "customer_dim");
    let migration = migration_of(&client, &customer).await;
    assert_eq!(migration.drift, []);
    assert_eq!(
        migration.statements,
        [format!(
            "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS `created_at` DateTime64(6)"
        )]
    );
    run(&client, &migration.statements).await;
    run(&client, &migration.statements).await; // IF NOT EXISTS: a rerun is harmless

    assert_eq!(migration_of(&client, &customer).await, Migration::default());
    let rows: Vec<(u64, String, String)> = client
        .query(&format!(
            "SELECT customer_id, city, toString(created_at) FROM {table} FINAL"
        ))
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        rows,
        [(
            7,
            "Paris".to_owned(),
            "1970-01-01 00:00:00.000000".to_owned()
        )],
        "the row survives and the new column reads as its default"
    );
    drop_database(&client, before.clickhouse_database()).await;
}

#[tokio::test]
async fn type_changes_and_removed_columns_are_reported_not_applied() {
    let before = pipeline_in_scratch_database();
    let client = installed(&before).await;

    let mut after = before.clone();
    let dimension = &mut after.spec.star_schema.dimensions[1];
    dimension.columns.retain(|c| c.name != "created_at");
    dimension
        .columns
        .iter_mut()
        .find(|c| c.name == "price")
        .unwrap()
        .r#type = "Decimal(10, 2)".into();
    let product = table_schemas(&after).unwrap().remove(1);
    let migration = migration_of(&client, &product).await;
    assert_eq!(migration.statements, Vec::<String>::new());
    let drift: Vec<String> = migration.drift.iter().map(ToString::to_string).collect();
    assert_eq!(
        drift,
        [
            "product_dim.price is Float64 in ClickHouse but Decimal(10, 2) in the spec; change it by hand",
            "product_dim.created_at (DateTime64(6)) is in ClickHouse but not in the spec; it is kept",
        ]
    );
    drop_database(&client, before.clickhouse_database()).await;
}

#[tokio::test]
async fn cleanup_setting_is_accepted_by_the_engine() {
    let mut pipeline = pipeline_in_scratch_database();
    pipeline.spec.clickhouse.cleanup_deleted_rows = true;
    let client = installed(&pipeline).await;
    let settings = engine_of(&client, &pipeline, "order_fact").await;
    assert!(
        settings.contains("allow_experimental_replacing_merge_with_cleanup = 1"),
        "{settings}"
    );
    drop_database(&client, pipeline.clickhouse_database()).await;
}

#[tokio::test]
async fn drop_statements_remove_every_star_table_and_can_run_twice() {
    let pipeline = pipeline_in_scratch_database();
    let client = installed(&pipeline).await;
    let mut drops = drop_statements(&pipeline).unwrap();
    drops.extend(delete_statements(&pipeline));
    run(&client, &drops).await;
    run(&client, &drops).await;
    let left: Vec<String> = client
        .query("SELECT name FROM system.tables WHERE database = ? ORDER BY name")
        .bind(pipeline.clickhouse_database())
        .fetch_all()
        .await
        .unwrap();
    // The status tables stay: other pipelines writing to the database may have rows in them.
    let mut status_tables: Vec<String> = STATUS_TABLES.iter().map(|t| t.name.to_owned()).collect();
    status_tables.sort();
    assert_eq!(left, status_tables);
    drop_database(&client, pipeline.clickhouse_database()).await;
}

/// Every statement the cluster path emits (install, a column added to each table, removal, the
/// operator's column read) is valid ClickHouse syntax: the engine parses each with `EXPLAIN AST`.
/// Running them needs a cluster with Keeper, which the local services do not have.
#[tokio::test]
async fn every_cluster_statement_parses() {
    let mut pipeline = pipeline_in_scratch_database();
    pipeline.spec.clickhouse.cluster = Some(cdcstar_crds::pipeline::ClusterSpec {
        name: "analytics".into(),
        replica_path: "/clickhouse/tables/{shard}/{database}/{table}".into(),
        replica_name: "{replica}".into(),
    });
    let placement = cdcstar_crds::clickhouse_placement::Placement::of(&pipeline);
    let mut statements = install_statements(&pipeline).unwrap();
    for table in table_schemas(&pipeline).unwrap() {
        let column = &table.columns[1];
        statements.extend(placement.add_column(
            &table.database,
            &table.name,
            &format!("{}_added", column.name),
            &column.column_type.to_string(),
        ));
    }
    statements.extend(drop_statements(&pipeline).unwrap());
    statements.extend(delete_statements(&pipeline));
    statements.push(placement.columns_query().replace('?', "'db'"));
    assert!(
        statements
            .iter()
            .any(|s| s.contains("ON CLUSTER `analytics`"))
    );
    let client = client();
    // The settings the sink sends on a cluster exist in this engine version.
    let with_settings = placement
        .sink_settings()
        .iter()
        .fold(client.clone(), |c, (name, value)| {
            c.with_option(*name, *value)
        });
    with_settings
        .query("SELECT 1")
        .execute()
        .await
        .expect("the sink's cluster settings are known to ClickHouse");
    for statement in &statements {
        client
            .query(&format!("EXPLAIN AST {statement}"))
            .fetch_bytes("TabSeparated")
            .unwrap()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{statement}\ndoes not parse: {e}"));
    }
}
