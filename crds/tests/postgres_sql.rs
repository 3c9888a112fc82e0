//! The generated Postgres SQL on the real server (DATABASE_URL): publication create and alter, replica
//! identity, slot create and drop, all idempotent. Each test creates its own scratch database with the
//! reference app's tables (`customer`, `product`, `"order"`, `orderitem`) and its own slot and
//! publication names.
//!
//! Over 400 lines: each scenario runs a statement sequence on a real server and reads the catalog back.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::pipeline::{FilterOp, RowCondition};
use cdcstar_crds::postgres::{
    PUBLICATION_EXISTS_QUERY, PUBLICATION_TABLES_QUERY, PublishedTables, QualifiedTable,
    REPLICA_IDENTITY_QUERY, ROW_FILTER_PROBE_PUBLICATION, RowFilterState, cleanup_statements,
    create_slot, install_statements, published_tables, reconcile_publication,
    reconcile_replica_identity, row_filter_probe,
};
use cdcstar_testkit::{ScratchDb, source_table_mut};
use tokio_postgres::Client;

const SCHEMA_SQL: &str = r#"
CREATE TABLE customer (id serial PRIMARY KEY, email varchar(255) NOT NULL UNIQUE, name varchar(255) NOT NULL,
    country varchar(100) NOT NULL, city varchar(100) NOT NULL, "createdAt" timestamp NOT NULL DEFAULT now());
CREATE TABLE product (id serial PRIMARY KEY, name varchar(255) NOT NULL, category varchar(100) NOT NULL,
    price double precision NOT NULL, "createdAt" timestamp NOT NULL DEFAULT now());
CREATE TABLE "order" (id serial PRIMARY KEY, "customerId" integer NOT NULL REFERENCES customer(id) ON DELETE CASCADE,
    "orderDate" timestamp NOT NULL DEFAULT now(), total numeric(12, 2) NOT NULL, status varchar(50) NOT NULL DEFAULT 'pending');
CREATE TABLE orderitem (id serial PRIMARY KEY, "orderId" integer NOT NULL REFERENCES "order"(id) ON DELETE CASCADE,
    "productId" integer NOT NULL REFERENCES product(id), quantity integer NOT NULL, price double precision NOT NULL);
"#;

/// A scratch database with the reference tables; dropped by [`Scratch::drop`].
struct Scratch {
    admin: Client,
    client: Client,
    db: ScratchDb,
}

impl Scratch {
    async fn new() -> Scratch {
        let db = ScratchDb::with_schema("crds_pg", &[SCHEMA_SQL]).await;
        Scratch {
            admin: db.admin().await,
            client: db.client().await,
            db,
        }
    }

    /// The example pipeline with a slot and publication of its own.
    fn pipeline(&self) -> CdcPipeline {
        let mut pipeline = common::shop_pipeline();
        pipeline.spec.source.publication = Some(format!("{}_pub", self.db.name));
        pipeline.spec.source.slot.name = Some(format!("{}_slot", self.db.name));
        pipeline
    }

    async fn run(&self, statements: &[String]) {
        for statement in statements {
            self.client
                .simple_query(statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}\nfailed: {e}"));
        }
    }

    async fn publication_tables(&self, publication: &str) -> Option<BTreeSet<QualifiedTable>> {
        let exists = self
            .client
            .query_opt(PUBLICATION_EXISTS_QUERY, &[&publication])
            .await
            .unwrap()
            .is_some();
        exists.then_some(self.published(publication).await.0)
    }

    /// The row filters of `publication`'s tables that have one, as Postgres prints them.
    async fn row_filters(&self, publication: &str) -> BTreeMap<QualifiedTable, String> {
        self.published(publication).await.1
    }

    /// The rows of [`PUBLICATION_TABLES_QUERY`] for `publication`, read as the operator reads them.
    async fn published(&self, publication: &str) -> PublishedTables {
        let rows = self
            .client
            .query(PUBLICATION_TABLES_QUERY, &[&publication])
            .await
            .unwrap();
        published_tables(rows.iter().map(|row| (row.get(0), row.get(1), row.get(2))))
    }

    /// The published and declared filters, the declared ones read through the probe publication
    /// in a transaction that is rolled back (as the operator and the capture do).
    async fn row_filter_state(&self, pipeline: &CdcPipeline) -> RowFilterState {
        let mut state = RowFilterState {
            published: self.row_filters(&pipeline.publication_name()).await,
            declared: BTreeMap::new(),
        };
        if let Some(probe) = row_filter_probe(pipeline) {
            self.client.batch_execute("BEGIN").await.unwrap();
            self.client.batch_execute(&probe).await.unwrap();
            state.declared = self.row_filters(ROW_FILTER_PROBE_PUBLICATION).await;
            self.client.batch_execute("ROLLBACK").await.unwrap();
        }
        state
    }

    async fn replica_identities(&self) -> BTreeMap<String, String> {
        let tables = ["customer", "product", "order", "orderitem"];
        self.client
            .query(REPLICA_IDENTITY_QUERY, &[&"public", &&tables[..]])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    async fn slot_plugin(&self, slot: &str) -> Option<String> {
        self.admin
            .query_opt(
                "SELECT plugin::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .unwrap()
            .map(|r| r.get(0))
    }

    async fn drop(self, pipeline: &CdcPipeline) {
        self.run(&cleanup_statements(pipeline)).await;
        drop(self.client);
        self.db.drop_all().await;
    }
}

fn tables(names: &[&str]) -> BTreeSet<QualifiedTable> {
    names
        .iter()
        .map(|n| QualifiedTable::new("public", *n))
        .collect()
}

#[tokio::test]
async fn install_creates_publication_replica_identity_and_slot_and_a_rerun_changes_nothing() {
    let scratch = Scratch::new().await;
    let pipeline = scratch.pipeline();
    let publication = pipeline.publication_name();
    let slot = pipeline.slot_name();
    assert_eq!(scratch.publication_tables(&publication).await, None);
    assert_eq!(
        reconcile_publication(&pipeline, None, &RowFilterState::default()),
        install_statements(&pipeline)[4..5]
    );

    scratch.run(&install_statements(&pipeline)).await;

    let current = scratch.publication_tables(&publication).await;
    assert_eq!(
        current,
        Some(tables(&["customer", "product", "order", "orderitem"]))
    );
    assert_eq!(
        reconcile_publication(&pipeline, current.as_ref(), &RowFilterState::default()),
        Vec::<String>::new()
    );
    let identities = scratch.replica_identities().await;
    assert_eq!(
        identities.values().filter(|v| *v == "f").count(),
        4,
        "{identities:?}"
    );
    assert_eq!(
        reconcile_replica_identity(&pipeline, &identities),
        Vec::<String>::new()
    );
    assert_eq!(
        scratch.slot_plugin(&slot).await.as_deref(),
        Some("pgoutput")
    );

    // Creating the slot again is a no-op rather than an error.
    let rerun = scratch
        .client
        .query(&create_slot(&slot, false), &[])
        .await
        .unwrap();
    assert!(rerun.is_empty(), "an existing slot is not created again");

    scratch.drop(&pipeline).await;
}

#[tokio::test]
async fn publication_is_altered_to_exactly_the_declared_tables() {
    let scratch = Scratch::new().await;
    let mut pipeline = scratch.pipeline();
    let publication = pipeline.publication_name();
    pipeline
        .spec
        .source
        .tables
        .retain(|t| t.name == "customer" || t.name == "order");
    scratch
        .run(&reconcile_publication(
            &pipeline,
            None,
            &RowFilterState::default(),
        ))
        .await;
    assert_eq!(
        scratch.publication_tables(&publication).await,
        Some(tables(&["customer", "order"]))
    );

    let declared = scratch.pipeline(); // all four tables
    let current = scratch.publication_tables(&publication).await;
    let statements = reconcile_publication(&declared, current.as_ref(), &RowFilterState::default());
    assert_eq!(statements.len(), 1);
    assert!(
        statements[0].starts_with("ALTER PUBLICATION"),
        "{statements:?}"
    );
    scratch.run(&statements).await;
    assert_eq!(
        scratch.publication_tables(&publication).await,
        Some(tables(&["customer", "product", "order", "orderitem"]))
    );

    // And back down to one table: removed tables leave the publication.
    let mut smaller = scratch.pipeline();
    smaller.spec.source.tables.retain(|t| t.name == "orderitem");
    let current = scratch.publication_tables(&publication).await;
    scratch
        .run(&reconcile_publication(
            &smaller,
            current.as_ref(),
            &RowFilterState::default(),
        ))
        .await;
    assert_eq!(
        scratch.publication_tables(&publication).await,
        Some(tables(&["orderitem"]))
    );
    scratch.drop(&declared).await;
}

#[tokio::test]
async fn replica_identity_is_only_set_where_missing() {
    let scratch = Scratch::new().await;
    let pipeline = scratch.pipeline();
    scratch
        .run(&[r#"ALTER TABLE "public"."product" REPLICA IDENTITY FULL"#.to_owned()])
        .await;
    let statements = reconcile_replica_identity(&pipeline, &scratch.replica_identities().await);
    assert_eq!(statements.len(), 3, "{statements:?}");
    assert!(!statements.iter().any(|s| s.contains("\"product\"")));
    scratch.run(&statements).await;
    assert!(
        scratch
            .replica_identities()
            .await
            .values()
            .all(|v| v == "f")
    );
    scratch.drop(&pipeline).await;
}

#[tokio::test]
async fn cleanup_drops_slot_and_publication_and_can_run_twice() {
    let scratch = Scratch::new().await;
    let pipeline = scratch.pipeline();
    scratch.run(&install_statements(&pipeline)).await;
    assert!(scratch.slot_plugin(&pipeline.slot_name()).await.is_some());

    scratch.run(&cleanup_statements(&pipeline)).await;
    scratch.run(&cleanup_statements(&pipeline)).await;
    assert_eq!(scratch.slot_plugin(&pipeline.slot_name()).await, None);
    assert_eq!(
        scratch
            .publication_tables(&pipeline.publication_name())
            .await,
        None
    );
    scratch.drop(&pipeline).await;
}

fn condition(column: &str, op: FilterOp, value: Option<&str>, values: &[&str]) -> RowCondition {
    RowCondition {
        column: column.into(),
        op,
        value: value.map(str::to_owned),
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    }
}

#[tokio::test]
async fn row_filters_are_published_compared_in_postgres_form_and_changed_with_set_table() {
    let scratch = Scratch::new().await;
    let mut pipeline = scratch.pipeline();
    let publication = pipeline.publication_name();
    source_table_mut(&mut pipeline, "order").row_filter = vec![
        condition("status", FilterOp::In, None, &["paid", "shipped"]),
        condition("total", FilterOp::Ge, Some("10.5"), &[]),
        condition("orderDate", FilterOp::IsNotNull, None, &[]),
    ];
    scratch.run(&install_statements(&pipeline)).await;
    let published = scratch.row_filters(&publication).await;
    let order_table = QualifiedTable::new("public", "order");
    assert_eq!(published.len(), 1, "{published:?}");
    let printed = &published[&order_table];
    assert!(
        printed.contains("'paid'") && printed.contains("10.5"),
        "{printed}"
    );

    // Unchanged: the probe prints the declared filter exactly as the publication holds it, and
    // leaves no publication behind.
    let state = scratch.row_filter_state(&pipeline).await;
    assert_eq!(state.declared, published);
    let current = scratch.publication_tables(&publication).await;
    assert_eq!(
        reconcile_publication(&pipeline, current.as_ref(), &state),
        Vec::<String>::new()
    );
    assert_eq!(
        scratch
            .publication_tables(ROW_FILTER_PROBE_PUBLICATION)
            .await,
        None
    );

    // A changed value is one SET TABLE that replaces the filter.
    source_table_mut(&mut pipeline, "order").row_filter[1].value = Some("20".into());
    let state = scratch.row_filter_state(&pipeline).await;
    let statements = reconcile_publication(&pipeline, current.as_ref(), &state);
    assert_eq!(statements.len(), 1, "{statements:?}");
    assert!(
        statements[0].starts_with("ALTER PUBLICATION"),
        "{statements:?}"
    );
    scratch.run(&statements).await;
    let state = scratch.row_filter_state(&pipeline).await;
    assert!(state.published[&order_table].contains("20"), "{state:?}");
    assert_eq!(
        reconcile_publication(&pipeline, current.as_ref(), &state),
        Vec::<String>::new()
    );

    // A filter removed is a SET TABLE too, and the table is published whole again.
    source_table_mut(&mut pipeline, "order").row_filter.clear();
    let state = scratch.row_filter_state(&pipeline).await;
    let statements = reconcile_publication(&pipeline, current.as_ref(), &state);
    assert_eq!(statements.len(), 1, "{statements:?}");
    scratch.run(&statements).await;
    assert!(scratch.row_filters(&publication).await.is_empty());
    scratch.drop(&pipeline).await;
}

#[tokio::test]
async fn a_hostile_row_filter_value_is_only_ever_a_literal() {
    let scratch = Scratch::new().await;
    let mut pipeline = scratch.pipeline();
    let hostile = r"x'); DROP TABLE customer; -- \' \";
    pipeline.spec.source.tables[0].row_filter =
        vec![condition("country", FilterOp::Ne, Some(hostile), &[])];
    scratch.run(&install_statements(&pipeline)).await;
    let customer_exists = scratch
        .client
        .query_one("SELECT to_regclass('public.customer') IS NOT NULL", &[])
        .await
        .unwrap()
        .get::<_, bool>(0);
    assert!(customer_exists);
    // The value reached Postgres as one literal: the probe prints the same filter, and Postgres
    // itself says which rows it keeps.
    let state = scratch.row_filter_state(&pipeline).await;
    assert_eq!(state.declared, state.published);
    scratch
        .client
        .execute(
            "INSERT INTO customer (email, name, country, city) VALUES ('a@x', 'a', $1, 'c'), ('b@x', 'b', 'FR', 'c')",
            &[&hostile],
        )
        .await
        .unwrap();
    let kept: i64 = scratch
        .client
        .query_one(
            &format!(
                "SELECT count(*) FROM customer WHERE {}",
                cdcstar_crds::postgres::row_filter_sql(&pipeline.spec.source.tables[0]).unwrap()
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        kept, 1,
        "only the row whose country is not the hostile text"
    );
    scratch.drop(&pipeline).await;
}
