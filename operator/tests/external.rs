//! External effects against the real services of `scripts/services.sh`: the publication, replica
//! identity and slot on the real Postgres (DATABASE_URL), the DDL and ADD COLUMN on the real
//! ClickHouse engine (CLICKHOUSE_URL). Each test works in its own database with a random suffix;
//! reconciling twice must change nothing.
//!
//! Over 400 lines: the operator's statements against the real Postgres and ClickHouse, one scenario
//! per test, sharing the setup above them.

mod common;

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::clickhouse_ddl::{self, Drift};
use cdcstar_crds::clickhouse_placement::Placement;
use cdcstar_crds::pipeline::CaptureEngine;
use cdcstar_crds::postgres::{self, SNAPSHOT_PROGRESS_DDL};
use cdcstar_crds::status_tables::{
    PARTITION_POSITIONS, STATUS_TABLES, StatusTable, VALUE_ADJUSTMENTS, VERIFICATIONS,
};
use cdcstar_operator::controller::{schema, source};
use cdcstar_operator::external::clickhouse::ClickHouseConnector;
use cdcstar_operator::external::postgres::PostgresConnector;
use cdcstar_operator::external::{DatabaseError, Sensitive, WarehouseConnector};
use cdcstar_operator::provision::{self, SecretValues};
use cdcstar_operator::sql::{ValueAdjustment, Verification, WarehouseReport, Watermark};
use cdcstar_testkit::{ScratchDb, required_env, source_table_mut, unique};
use common::fixtures::{PipelineFixture, with_shipment_and_phone};
use tokio_postgres::types::{FromSqlOwned, ToSql};

/// A fresh database holding the reference app's four tables and a `shipment` table.
async fn source_database() -> ScratchDb {
    ScratchDb::with_schema(
        "cdcstar_op",
        &[r#"
            CREATE TABLE customer (id bigserial PRIMARY KEY, email text, name text, country text, city text, "createdAt" timestamp);
            CREATE TABLE product (id bigserial PRIMARY KEY, name text, category text, price float8, "createdAt" timestamp);
            CREATE TABLE "order" (id bigserial PRIMARY KEY, "customerId" bigint, status text, total numeric(12,2), "orderDate" timestamp);
            CREATE TABLE orderitem (id bigserial PRIMARY KEY, "orderId" bigint, "productId" bigint, quantity int, price float8);
            CREATE TABLE shipment (id bigserial PRIMARY KEY, carrier text);
            "#],
    )
    .await
}

/// A [`source_database`], the DSN the operator is given for it, and a session checking what the
/// operator did there.
async fn source() -> (ScratchDb, Sensitive, tokio_postgres::Client) {
    let db = source_database().await;
    let dsn = Sensitive::new(db.url.clone());
    let check = db.client().await;
    (db, dsn, check)
}

/// Drops the ClickHouse `database` of a test.
async fn drop_clickhouse_database(client: &clickhouse::Client, database: &str) {
    client
        .query(&format!("DROP DATABASE IF EXISTS `{database}`"))
        .execute()
        .await
        .unwrap();
}

/// The operator's cleanup of `pipeline` on the [`source`] database, which is then dropped.
async fn cleaned_up(
    db: ScratchDb,
    dsn: &Sensitive,
    pipeline: &CdcPipeline,
    check: tokio_postgres::Client,
) {
    source::cleanup_source(&PostgresConnector, dsn, pipeline)
        .await
        .unwrap();
    drop(check);
    db.drop_all().await;
}

/// One pass of the source phase of `pipeline` on the database at `dsn`, which succeeds.
async fn source_pass(dsn: &Sensitive, pipeline: &CdcPipeline) -> source::SourceReport {
    source::reconcile_source(&PostgresConnector, dsn, pipeline)
        .await
        .unwrap()
}

/// One pass of the schema phase of `pipeline` on the test ClickHouse, which succeeds.
async fn schema_pass(pipeline: &CdcPipeline) -> schema::SchemaReport {
    schema::reconcile_schema(&ClickHouseConnector, None, pipeline)
        .await
        .unwrap()
}

/// The test pipeline, named uniquely after `prefix`.
fn pipeline_named(prefix: &str) -> CdcPipeline {
    let mut pipeline = CdcPipeline::test();
    pipeline.metadata.name = Some(unique(prefix).replace('_', "-"));
    pipeline
}

/// The first column of the rows `sql` answers on the checking session `client`.
async fn column<T: FromSqlOwned>(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Vec<T> {
    let rows = client.query(sql, params).await.unwrap();
    rows.iter().map(|row| row.get(0)).collect()
}

/// The first column of the one row `sql` answers on the checking session `client`.
async fn value<T: FromSqlOwned>(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> T {
    client.query_one(sql, params).await.unwrap().get(0)
}

/// The tables `publication` publishes, by name.
async fn published_tables(client: &tokio_postgres::Client, publication: &str) -> Vec<String> {
    let sql = "SELECT tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1";
    column(client, sql, &[&publication]).await
}

/// The row filter `publication` holds for table `order`.
async fn order_filter(client: &tokio_postgres::Client, publication: &str) -> Option<String> {
    let sql =
        "SELECT rowfilter FROM pg_publication_tables WHERE pubname = $1 AND tablename = 'order'";
    value(client, sql, &[&publication]).await
}

/// Whether the replication slot `slot` exists.
async fn slot_exists(client: &tokio_postgres::Client, slot: &str) -> bool {
    let sql = "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1";
    client.query_opt(sql, &[&slot]).await.unwrap().is_some()
}

#[tokio::test]
async fn publication_identity_and_slot_are_created_altered_and_dropped_on_postgres() {
    let (db, dsn, check) = source().await;
    let pipeline = pipeline_named("op");
    let publication = pipeline.publication_name();
    let slot = pipeline.slot_name();

    let first = source_pass(&dsn, &pipeline).await;
    assert_eq!(first.executed, postgres::install_statements(&pipeline));
    assert_eq!(
        published_tables(&check, &publication).await,
        ["customer", "order", "orderitem", "product"]
    );
    assert!(slot_exists(&check, &slot).await);
    let full: i64 = value(
        &check,
        "SELECT count(*) FROM pg_class WHERE relname IN ('customer','product','order','orderitem') AND relreplident = 'f'",
        &[],
    )
    .await;
    assert_eq!(full, 4);

    let second = source_pass(&dsn, &pipeline).await;
    assert!(second.executed.is_empty(), "{:?}", second.executed);
    let observed_slot = second.observed.slot.unwrap();
    assert!(observed_slot.retained_wal_bytes.unwrap() >= 0);
    // The same query reads invalidation on PostgreSQL 15 (no invalidation_reason column) as on 17+.
    assert_eq!(observed_slot.invalidated, None);
    assert!(
        second.observed.snapshot.is_empty(),
        "no snapshot started yet"
    );

    // The native capture records its snapshot progress in the source database (capture/src/snapshot.rs);
    // the operator reports it in status.snapshot.
    check
        .batch_execute(&format!(
            "{SNAPSHOT_PROGRESS_DDL};
             INSERT INTO cdcstar.snapshot_progress (slot, table_name, state, last_key, rows) VALUES
               ('{slot}', 'product', 'running', '40', 40), ('{slot}', 'customer', 'done', NULL, 7),
               ('another_slot', 'order', 'running', '1', 1);"
        ))
        .await
        .unwrap();
    let progress = source_pass(&dsn, &pipeline).await;
    let reported: Vec<(String, String, i64)> = progress
        .observed
        .snapshot
        .into_iter()
        .map(|table| (table.table, table.state, table.rows))
        .collect();
    assert_eq!(
        reported,
        [
            ("customer".to_owned(), "Done".to_owned(), 7),
            ("product".to_owned(), "Running".to_owned(), 40)
        ]
    );

    let changed = with_shipment_and_phone(pipeline.clone());
    let altered = source_pass(&dsn, &changed).await;
    assert_eq!(altered.executed.len(), 2, "{:?}", altered.executed);
    assert_eq!(
        published_tables(&check, &publication).await,
        ["customer", "order", "orderitem", "product", "shipment"]
    );
    let again = source_pass(&dsn, &changed).await;
    assert!(again.executed.is_empty(), "{:?}", again.executed);

    let dropped = source::cleanup_source(&PostgresConnector, &dsn, &changed)
        .await
        .unwrap();
    assert!(dropped.slot_existed && dropped.publication_existed);
    assert!(published_tables(&check, &publication).await.is_empty());
    assert!(!slot_exists(&check, &slot).await);
    // Already gone counts as done, and is said to be.
    let again = source::cleanup_source(&PostgresConnector, &dsn, &changed)
        .await
        .unwrap();
    assert!(!again.slot_existed && !again.publication_existed);
    drop(check);
    db.drop_all().await;
}

/// The slot's creation point, to tell a slot created anew from the one before it.
async fn slot_restart_lsn(client: &tokio_postgres::Client, slot: &str) -> String {
    let sql = "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1";
    value(client, sql, &[&slot]).await
}

#[tokio::test]
async fn failover_is_refused_on_this_postgres_before_17_without_creating_a_slot() {
    let (db, dsn, check) = source().await;
    let mut pipeline = pipeline_named("op");
    pipeline.spec.source.slot.failover = true;
    let slot = pipeline.slot_name();
    let version: i32 = value(&check, postgres::SERVER_VERSION_QUERY, &[]).await;
    assert!(
        version < postgres::FAILOVER_MIN_SERVER_VERSION,
        "this test shows the refusal on the local PostgreSQL 15; the server is {version}"
    );
    // What the operator avoids: this server has no failover argument at all.
    let refused = check.query(&postgres::create_slot(&slot, true), &[]).await;
    let refused = refused.unwrap_err();
    let message = refused
        .as_db_error()
        .map(|e| e.message())
        .unwrap_or_default();
    assert!(
        message.contains("pg_create_logical_replication_slot(unknown, unknown, boolean, boolean, boolean) does not exist"),
        "{message}"
    );

    let report = source_pass(&dsn, &pipeline).await;
    assert_eq!(report.observed.server_version_num, Some(version));
    assert_eq!(
        report.slot_plan,
        cdcstar_operator::sql::SlotPlan::FailoverUnsupported {
            server_version_num: version
        }
    );
    assert!(
        !slot_exists(&check, &slot).await,
        "no slot without failover"
    );
    assert!(report.capture_held(&pipeline).is_some());
    let condition = source::publication_condition(&pipeline, &Ok(report));
    assert_eq!(condition.reason, source::FAILOVER_UNSUPPORTED);
    assert!(
        condition
            .message
            .contains(&format!("server_version_num {version}")),
        "{}",
        condition.message
    );
    // The publication is in place all the same; a second pass runs nothing more.
    let again = source_pass(&dsn, &pipeline).await;
    assert!(again.executed.is_empty(), "{:?}", again.executed);
    // Without failover the slot is created, and PostgreSQL 15 reports no failover flag.
    pipeline.spec.source.slot.failover = false;
    source_pass(&dsn, &pipeline).await;
    let observed = source_pass(&dsn, &pipeline).await;
    assert_eq!(observed.observed.slot.unwrap().failover, None);
    cleaned_up(db, &dsn, &pipeline, check).await;
}

#[tokio::test]
async fn recreating_a_slot_drops_it_resets_only_its_progress_and_creates_it_anew() {
    let (db, dsn, check) = source().await;
    let mut pipeline = pipeline_named("op");
    let slot = pipeline.slot_name();
    source_pass(&dsn, &pipeline).await;
    check
        .batch_execute(&format!(
            "{SNAPSHOT_PROGRESS_DDL};
             INSERT INTO cdcstar.snapshot_progress (slot, table_name, state, last_key, rows) VALUES
               ('{slot}', 'customer', 'done', NULL, 7), ('another_slot', 'order', 'done', NULL, 1);"
        ))
        .await
        .unwrap();
    // WAL moves on, so a slot created anew starts at a later position than the old one.
    check
        .batch_execute("INSERT INTO customer (email) VALUES ('a'); SELECT pg_switch_wal();")
        .await
        .unwrap();
    let before = slot_restart_lsn(&check, &slot).await;

    // A request on a healthy slot drops nothing and is answered as such.
    pipeline.metadata.annotations = Some(
        [(
            cdcstar_crds::pipeline::RECREATE_SLOT_ANNOTATION.to_owned(),
            "1".to_owned(),
        )]
        .into_iter()
        .collect(),
    );
    let kept = source_pass(&dsn, &pipeline).await;
    assert!(kept.executed.is_empty(), "{:?}", kept.executed);
    assert_eq!(kept.handled_request.unwrap().outcome, "NotInvalidated");
    assert_eq!(slot_restart_lsn(&check, &slot).await, before);

    // PostgreSQL 15 cannot be made to invalidate a slot here without changing server settings the
    // other tests share, so the statements a recreation runs are run as the operator runs them.
    let statements = postgres::recreate_slot_statements(&pipeline);
    for statement in &statements {
        check.batch_execute(statement).await.unwrap();
    }
    assert!(slot_exists(&check, &slot).await);
    assert_ne!(slot_restart_lsn(&check, &slot).await, before, "a new slot");
    let progress: Vec<String> = column(
        &check,
        "SELECT slot FROM cdcstar.snapshot_progress ORDER BY slot",
        &[],
    )
    .await;
    assert_eq!(
        progress,
        ["another_slot"],
        "only this slot's progress is reset"
    );
    // Idempotent: run again (a pass that failed half way is retried), it ends the same.
    for statement in &statements {
        check.batch_execute(statement).await.unwrap();
    }
    assert!(slot_exists(&check, &slot).await);
    cleaned_up(db, &dsn, &pipeline, check).await;
}

#[tokio::test]
async fn a_row_filter_is_published_left_alone_when_unchanged_and_replaced_when_changed() {
    use cdcstar_crds::pipeline::{FilterOp, RowCondition};
    let (db, dsn, check) = source().await;
    let mut pipeline = pipeline_named("op");
    source_table_mut(&mut pipeline, "order").row_filter = vec![RowCondition {
        column: "status".into(),
        op: FilterOp::NotIn,
        value: None,
        values: vec!["cancelled".into(), "draft".into()],
    }];
    let publication = pipeline.publication_name();

    let first = source_pass(&dsn, &pipeline).await;
    assert_eq!(first.executed, postgres::install_statements(&pipeline));
    assert!(
        order_filter(&check, &publication)
            .await
            .unwrap()
            .contains("'draft'")
    );
    // The declared filter, as Postgres prints it through the probe, equals the published one:
    // nothing to run, and the probe left no publication behind.
    let second = source_pass(&dsn, &pipeline).await;
    assert!(second.executed.is_empty(), "{:?}", second.executed);
    assert_eq!(
        second.observed.row_filters.declared,
        second.observed.row_filters.published
    );
    assert!(
        published_tables(&check, postgres::ROW_FILTER_PROBE_PUBLICATION)
            .await
            .is_empty()
    );

    source_table_mut(&mut pipeline, "order").row_filter[0].values = vec!["cancelled".into()];
    let changed = source_pass(&dsn, &pipeline).await;
    assert_eq!(changed.executed.len(), 1, "{:?}", changed.executed);
    assert!(changed.executed[0].starts_with("ALTER PUBLICATION"));
    assert!(
        !order_filter(&check, &publication)
            .await
            .unwrap()
            .contains("'draft'")
    );
    let again = source_pass(&dsn, &pipeline).await;
    assert!(again.executed.is_empty(), "{:?}", again.executed);

    // A filter Postgres refuses (a column that does not exist) fails the inspection with its
    // reason, and changes nothing.
    source_table_mut(&mut pipeline, "order").row_filter[0].column = "state".into();
    let refused = source::reconcile_source(&PostgresConnector, &dsn, &pipeline)
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("refuses the declared row filters"),
        "{refused}"
    );
    assert!(
        order_filter(&check, &publication)
            .await
            .unwrap()
            .contains("'cancelled'")
    );

    cleaned_up(db, &dsn, &pipeline, check).await;
}

#[tokio::test]
async fn redpanda_connect_engine_only_sets_identity_and_cleanup_drops_its_publication() {
    let (db, dsn, check) = source().await;
    let mut pipeline = pipeline_named("rp");
    pipeline.spec.capture.engine = CaptureEngine::RedpandaConnect;
    let report = source_pass(&dsn, &pipeline).await;
    assert_eq!(
        report.executed.len(),
        4,
        "replica identities only: {:?}",
        report.executed
    );
    assert!(!slot_exists(&check, &pipeline.slot_name()).await);
    // What Redpanda Connect would create.
    let publication = postgres::effective_publication_name(&pipeline);
    check
        .batch_execute(&format!(
            "CREATE PUBLICATION \"{publication}\" FOR TABLE customer"
        ))
        .await
        .unwrap();
    check
        .query_one(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&pipeline.slot_name()],
        )
        .await
        .unwrap();
    source::cleanup_source(&PostgresConnector, &dsn, &pipeline)
        .await
        .unwrap();
    assert!(published_tables(&check, &publication).await.is_empty());
    assert!(!slot_exists(&check, &pipeline.slot_name()).await);
    drop(check);
    db.drop_all().await;
}

#[tokio::test]
async fn unreachable_postgres_is_reported_as_such() {
    let dsn = Sensitive::new("postgresql://postgres:secret-value@127.0.0.1:1/none");
    let error = source::reconcile_source(&PostgresConnector, &dsn, &CdcPipeline::test())
        .await
        .unwrap_err();
    assert!(matches!(error.0, DatabaseError::Unreachable(_)), "{error}");
    assert!(!error.to_string().contains("secret-value"), "{error}");
}

/// The status tables' names, sorted.
/// Inserts `rows` (JSONEachRow lines) into the status table `table` of `database`.
async fn insert_rows(
    client: &clickhouse::Client,
    database: &str,
    table: &StatusTable,
    rows: String,
) {
    let mut insert = client
        .clone()
        .with_database(database)
        .insert_formatted_with(table.insert_statement());
    insert.send(rows.into()).await.unwrap();
    insert.end().await.unwrap();
}

fn status_table_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = STATUS_TABLES.iter().map(|t| t.name).collect();
    names.sort();
    names
}

fn clickhouse_pipeline() -> (CdcPipeline, String) {
    let mut pipeline = CdcPipeline::test();
    let database = unique("cdcstar_op");
    pipeline.spec.clickhouse.url = required_env("CLICKHOUSE_URL");
    pipeline.spec.clickhouse.database = database.clone();
    (pipeline, database)
}

#[tokio::test]
async fn ddl_and_add_column_run_on_clickhouse_and_twice_changes_nothing() {
    let (pipeline, database) = clickhouse_pipeline();
    let url = pipeline.spec.clickhouse.url.clone();
    let client = clickhouse::Client::default().with_url(&url);

    let first = schema_pass(&pipeline).await;
    assert_eq!(
        first.executed,
        clickhouse_ddl::install_statements(&pipeline).unwrap()
    );
    assert_eq!(first.report, WarehouseReport::default());
    let second = schema_pass(&pipeline).await;
    assert!(second.executed.is_empty(), "{:?}", second.executed);
    assert!(second.drift.is_empty(), "{:?}", second.drift);

    client
        .query(&format!(
            "INSERT INTO `{database}`.customer_dim (customer_id, email, name, country, city, created_at, lsn, is_deleted) \
             VALUES (1, 'a@example.com', 'Ada', 'UK', 'London', now64(6), 10, 0)"
        ))
        .execute()
        .await
        .unwrap();

    let changed = with_shipment_and_phone(pipeline.clone());
    let evolved = schema_pass(&changed).await;
    assert_eq!(evolved.executed.len(), 2, "{:?}", evolved.executed);
    assert!(evolved.executed[0].contains("ADD COLUMN IF NOT EXISTS `phone` Nullable(String)"));
    let again = schema_pass(&changed).await;
    assert!(again.executed.is_empty(), "{:?}", again.executed);

    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Kept {
        name: String,
        phone: Option<String>,
    }
    let kept = client
        .query(&format!(
            "SELECT name, phone FROM `{database}`.customer_dim FINAL WHERE customer_id = 1"
        ))
        .fetch_all::<Kept>()
        .await
        .unwrap();
    assert_eq!(kept.len(), 1, "the row survives the migration");
    assert_eq!(kept[0].name, "Ada");
    assert_eq!(kept[0].phone, None);

    // A type change in the spec is drift: reported, never applied.
    let mut retyped = changed.clone();
    retyped.spec.star_schema.dimensions[0].columns[2].r#type = "Nullable(String)".into();
    let drifted = schema_pass(&retyped).await;
    assert!(drifted.executed.is_empty());
    assert!(
        matches!(drifted.drift.as_slice(), [Drift::TypeChanged { column, .. }] if column == "name")
    );

    let dropped = schema::drop_tables(&ClickHouseConnector, None, &changed)
        .await
        .unwrap();
    assert_eq!(dropped.len(), 5);
    let warehouse = ClickHouseConnector.connect(&url, None);
    let observed = warehouse
        .observe(&database, &Placement::default())
        .await
        .unwrap();
    assert_eq!(
        observed.tables.keys().collect::<Vec<_>>(),
        status_table_names(),
        "only the status tables stay"
    );
    schema::drop_tables(&ClickHouseConnector, None, &changed)
        .await
        .unwrap();
    drop_clickhouse_database(&client, &database).await;
}

#[tokio::test]
async fn the_schema_pass_reads_what_the_sink_reported_for_this_pipeline_only() {
    let (pipeline, database) = clickhouse_pipeline();
    let client = clickhouse::Client::default().with_url(&pipeline.spec.clickhouse.url);
    schema_pass(&pipeline).await;
    let rows = format!(
        "{{\"pipeline\":\"{}\",\"table\":\"order_fact\",\"column\":\"order_date\",\"policy\":\"clamp\",\"values\":3,\"last_seen\":\"2026-01-01 00:00:01.500\"}}\n\
         {{\"pipeline\":\"elsewhere/shop\",\"table\":\"order_fact\",\"column\":\"order_date\",\"policy\":\"clamp\",\"values\":9,\"last_seen\":\"2026-01-01 00:00:00.000\"}}\n",
        pipeline.status_key()
    );
    insert_rows(&client, &database, &VALUE_ADJUSTMENTS, rows).await;

    assert_eq!(
        schema_pass(&pipeline).await.report.watermark,
        None,
        "no position written yet"
    );
    let positions = format!(
        "{{\"pipeline\":\"{key}\",\"topic\":\"shop.order\",\"partition\":0,\"commit_lsn\":32,\"commit_time\":\"2026-01-01 00:00:02.000003\",\"applied_at\":\"2026-01-01 00:00:03.000\"}}\n\
         {{\"pipeline\":\"{key}\",\"topic\":\"shop.order\",\"partition\":1,\"commit_lsn\":48,\"commit_time\":\"2026-01-01 00:00:04.000000\",\"applied_at\":\"2026-01-01 00:00:05.000\"}}\n",
        key = pipeline.status_key()
    );
    insert_rows(&client, &database, &PARTITION_POSITIONS, positions).await;

    // Two runs of the verifier for this pipeline (the newer one counts) and one of another.
    let verifications = format!(
        "{{\"pipeline\":\"{key}\",\"table\":\"customer_dim\",\"verified_at\":\"2026-01-01 00:00:06.000\",\"rows_checked\":10,\"mismatches\":2,\"mismatch_keys\":[\"7\",\"9\"],\"repaired\":0,\"skipped\":0,\"not_verified\":\"\"}}\n\
         {{\"pipeline\":\"{key}\",\"table\":\"customer_dim\",\"verified_at\":\"2026-01-01 00:00:07.250\",\"rows_checked\":11,\"mismatches\":0,\"mismatch_keys\":[],\"repaired\":2,\"skipped\":1,\"not_verified\":\"\"}}\n\
         {{\"pipeline\":\"elsewhere/shop\",\"table\":\"order_fact\",\"verified_at\":\"2026-01-01 00:00:08.000\",\"rows_checked\":5,\"mismatches\":5,\"mismatch_keys\":[],\"repaired\":0,\"skipped\":0,\"not_verified\":\"\"}}\n",
        key = pipeline.status_key()
    );
    insert_rows(&client, &database, &VERIFICATIONS, verifications).await;

    let report = schema_pass(&pipeline).await.report;
    assert_eq!(
        report.verifications,
        [Verification {
            table: "customer_dim".into(),
            verified_at_ms: 1_767_225_607_250,
            rows_checked: 11,
            mismatches: 0,
            mismatch_keys: vec![],
            repaired: 2,
            skipped: 1,
            not_verified: String::new(),
        }]
    );
    assert_eq!(
        report.watermark,
        Some(Watermark {
            commit_lsn: 32,
            commit_time_us: 1_767_225_602_000_003,
            partitions: 2,
        })
    );
    assert_eq!(
        report.value_adjustments,
        [ValueAdjustment {
            table: "order_fact".into(),
            column: "order_date".into(),
            policy: "clamp".into(),
            values: 3,
            last_seen_ms: 1_767_225_601_500,
        }]
    );
    drop_clickhouse_database(&client, &database).await;
}

#[tokio::test]
async fn unreachable_clickhouse_is_reported_as_such() {
    let mut pipeline = CdcPipeline::test();
    pipeline.spec.clickhouse.url = "http://127.0.0.1:1".into();
    let error = schema::reconcile_schema(&ClickHouseConnector, None, &pipeline)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            schema::SchemaError::Database(DatabaseError::Unreachable(_))
        ),
        "{error}"
    );
}

#[tokio::test]
async fn provision_runs_both_database_phases_and_deprovision_the_finalizers_cleanup() {
    let db = source_database().await;
    let (mut pipeline, clickhouse_database) = clickhouse_pipeline();
    pipeline.metadata.name = Some(unique("op").replace('_', "-"));
    pipeline.spec.clickhouse.drop_tables_on_delete = true;
    let secrets = SecretValues {
        source_dsn: Sensitive::new(db.url.clone()),
        warehouse_credentials: None,
    };
    let check = db.client().await;
    let tables = |ch: String| async move {
        clickhouse::Client::default()
            .with_url(required_env("CLICKHOUSE_URL"))
            .query(&format!(
                "SELECT count() FROM system.tables WHERE database = '{ch}'"
            ))
            .fetch_one::<u64>()
            .await
            .unwrap()
    };

    let lines = provision::provision(&pipeline, &secrets).await.unwrap();
    assert!(slot_exists(&check, &pipeline.slot_name()).await);
    assert_eq!(
        tables(clickhouse_database.clone()).await,
        clickhouse_ddl::install_statements(&pipeline)
            .unwrap()
            .iter()
            .filter(|s| s.starts_with("CREATE TABLE") || s.starts_with("CREATE VIEW"))
            .count() as u64
    );
    assert!(
        lines.iter().any(|l| l.starts_with("postgres: ")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("clickhouse: ")),
        "{lines:?}"
    );
    assert!(
        provision::provision(&pipeline, &secrets)
            .await
            .unwrap()
            .is_empty(),
        "a second provision must change nothing"
    );

    let note = provision::deprovision(&pipeline, &secrets).await.unwrap();
    assert!(note.starts_with("dropped replication slot"), "{note}");
    assert!(!slot_exists(&check, &pipeline.slot_name()).await);
    assert_eq!(
        tables(clickhouse_database).await,
        status_table_names().len() as u64,
        "only the status tables stay"
    );
    drop(check);
    db.drop_all().await;
}
