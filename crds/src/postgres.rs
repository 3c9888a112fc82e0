//! The SQL the operator runs on the source Postgres: publication, replica identity, replication slot,
//! and their removal. Pure: statements are built from the spec (and, for changes, the current state the
//! caller read with the queries below); nothing here connects.
//!
//! Every identifier is quoted with [`quote_ident`] and every name passed as a value with
//! [`quote_literal`], even though [`crate::validate()`] already restricts names: the source tables of the
//! reference app include `order`, a keyword, and camelCase names only survive quoted.
//!
//! A table's `rowFilter` becomes its `WHERE (...)` in the publication ([`row_filter_sql`], also the
//! snapshot's condition); a changed filter is found by comparing `pg_publication_tables.rowfilter`
//! with the declared filters as Postgres prints them ([`row_filter_probe`]).
//!
//! The publication publishes `insert, update, delete, truncate`: a `TRUNCATE` of a source table becomes
//! a `truncate` event (see `envelope`), and the sink deletes the rows it held.
//!
//! With the `redpandaConnect` engine, Redpanda Connect creates its own publication
//! (`pglog_stream_<slot>`) and slot; the operator then only sets the replica identity, and removes that
//! publication and the slot on delete.
//!
//! Over 400 lines: one statement set whose parts share quoting and names; a third of the file tests it.

use std::collections::{BTreeMap, BTreeSet};

use crate::pipeline::{CaptureEngine, CdcPipeline, FilterOp, RowCondition, SourceTable};

/// Logical decoding plugin of every slot.
pub const OUTPUT_PLUGIN: &str = "pgoutput";

/// Operations the publication publishes.
pub const PUBLISHED_OPERATIONS: &str = "insert, update, delete, truncate";

/// Reads the tables of a publication: bind `$1` to the publication name; rows are
/// (`schemaname`, `tablename`, `rowfilter`: the table's row filter as Postgres prints it, NULL
/// when it has none).
// NB: `rowfilter` exists from PostgreSQL 15 on; read through to_jsonb so the query runs on older
// servers too, where it is NULL.
pub const PUBLICATION_TABLES_QUERY: &str = "SELECT schemaname::text, tablename::text, to_jsonb(t) ->> 'rowfilter' \
     FROM pg_catalog.pg_publication_tables t WHERE pubname = $1";

/// A publication's tables, and the row filters of those that have one.
pub type PublishedTables = (BTreeSet<QualifiedTable>, BTreeMap<QualifiedTable, String>);

/// The rows of [`PUBLICATION_TABLES_QUERY`] (schema, table, row filter) as the publication's
/// tables and row filters.
pub fn published_tables(
    rows: impl IntoIterator<Item = (String, String, Option<String>)>,
) -> PublishedTables {
    let mut tables = BTreeSet::new();
    let mut filters = BTreeMap::new();
    for (schema, name, filter) in rows {
        let table = QualifiedTable::new(schema, name);
        if let Some(filter) = filter {
            filters.insert(table.clone(), filter);
        }
        tables.insert(table);
    }
    (tables, filters)
}

/// The publication created, inside a transaction that is always rolled back, to read how Postgres
/// prints the declared row filters ([`row_filter_probe`]).
pub const ROW_FILTER_PROBE_PUBLICATION: &str = "cdcstar_row_filter_probe";

/// Whether a publication exists: bind `$1` to its name; one row when it does.
pub const PUBLICATION_EXISTS_QUERY: &str =
    "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1";

/// Replica identity of tables: bind `$1` to the schema and `$2` to a `text[]` of table names; rows are
/// (`relname`, `relreplident` as text: `d` default, `f` full, `n` nothing, `i` index).
pub const REPLICA_IDENTITY_QUERY: &str = "SELECT c.relname::text, c.relreplident::text \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relname = ANY($2)";

/// `relreplident` value of `REPLICA IDENTITY FULL`.
pub const REPLICA_IDENTITY_FULL: &str = "f";

/// Creates the table where the native capture records its initial snapshot's progress in the source
/// database, one row per slot and table (`state` is `pending`, `running` or `done`; `last_key` is
/// where a running table resumes). The capture creates it; the operator only reads it.
pub const SNAPSHOT_PROGRESS_DDL: &str = "CREATE SCHEMA IF NOT EXISTS cdcstar; \
     CREATE TABLE IF NOT EXISTS cdcstar.snapshot_progress ( \
       slot text NOT NULL, \
       table_name text NOT NULL, \
       state text NOT NULL, \
       last_key text, \
       rows bigint NOT NULL DEFAULT 0, \
       updated_at timestamptz NOT NULL DEFAULT now(), \
       PRIMARY KEY (slot, table_name))";

/// Reads a slot's snapshot progress: bind `$1` to the slot name; rows are (`table_name`, `state`,
/// `last_key`, `rows`), by table name. Fails with `undefined_table` before any snapshot started.
pub const SNAPSHOT_PROGRESS_QUERY: &str = "SELECT table_name, state, last_key, rows \
     FROM cdcstar.snapshot_progress WHERE slot = $1 ORDER BY table_name";

/// Quote a Postgres identifier: wrap in `"` and double any `"` inside.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quote a Postgres string literal: wrap in `'` and double any `'` inside (with
/// `standard_conforming_strings`, on by default since Postgres 9.1).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `WHERE a AND b ...` of `conditions` (each already a complete condition), or nothing when there
/// are none: the clause of the snapshot's and the verifier's row queries.
pub fn where_all(conditions: impl IntoIterator<Item = String>) -> String {
    let conditions: Vec<String> = conditions.into_iter().collect();
    if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    }
}

/// A table with its schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QualifiedTable {
    pub schema: String,
    pub name: String,
}

impl QualifiedTable {
    /// A table of `schema`.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        QualifiedTable {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// `"schema"."name"`.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// The captured tables, in spec order.
pub fn declared_tables(pipeline: &CdcPipeline) -> Vec<QualifiedTable> {
    let schema = &pipeline.spec.source.schema;
    pipeline
        .spec
        .source
        .tables
        .iter()
        .map(|t| QualifiedTable::new(schema.clone(), t.name.clone()))
        .collect()
}

/// A row filter's value as a string literal: `'...'` with quotes doubled, or `E'...'` with
/// backslashes doubled too when it has one, which reads the same whatever
/// `standard_conforming_strings` says.
fn filter_literal(value: &str) -> String {
    if value.contains('\\') {
        format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        quote_literal(value)
    }
}

fn condition_sql(condition: &RowCondition) -> String {
    let column = quote_ident(&condition.column);
    let value = || filter_literal(condition.value.as_deref().unwrap_or_default());
    // NB: `IN (...)` on a varchar column is an array coercion, which Postgres refuses in a
    // publication's WHERE ("invalid publication WHERE expression"); a chain of comparisons means
    // the same (NULL included: neither keeps a NULL) and is accepted for every type.
    let values = |operator: &str, joiner: &str| {
        condition
            .values
            .iter()
            .map(|v| format!("{column} {operator} {}", filter_literal(v)))
            .collect::<Vec<_>>()
            .join(joiner)
    };
    match condition.op {
        FilterOp::Eq => format!("{column} = {}", value()),
        FilterOp::Ne => format!("{column} <> {}", value()),
        FilterOp::Lt => format!("{column} < {}", value()),
        FilterOp::Le => format!("{column} <= {}", value()),
        FilterOp::Gt => format!("{column} > {}", value()),
        FilterOp::Ge => format!("{column} >= {}", value()),
        FilterOp::In => values("=", " OR "),
        FilterOp::NotIn => values("<>", " AND "),
        FilterOp::IsNull => format!("{column} IS NULL"),
        FilterOp::IsNotNull => format!("{column} IS NOT NULL"),
    }
}

/// The row filter of `table` as a SQL condition (each condition parenthesised, ANDed), `None`
/// when it has none. The one renderer of both the publication's `WHERE` and the snapshot's query:
/// identifiers quoted, values string literals that Postgres reads as the column's type, so a spec
/// can only ever compare a column with a constant.
pub fn row_filter_sql(table: &SourceTable) -> Option<String> {
    if table.row_filter.is_empty() {
        return None;
    }
    Some(
        table
            .row_filter
            .iter()
            .map(|condition| format!("({})", condition_sql(condition)))
            .collect::<Vec<_>>()
            .join(" AND "),
    )
}

/// The captured tables with their row filters, `"schema"."table"` or `"schema"."table" WHERE
/// (...)`, for `FOR TABLE` and `SET TABLE`.
fn table_list(pipeline: &CdcPipeline, only_filtered: bool) -> String {
    declared_tables(pipeline)
        .iter()
        .zip(&pipeline.spec.source.tables)
        .filter_map(|(declared, table)| {
            let quoted = declared.quoted();
            match row_filter_sql(table) {
                Some(filter) => Some(format!("{quoted} WHERE ({filter})")),
                None if only_filtered => None,
                None => Some(quoted),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `CREATE PUBLICATION` for the captured tables, each with its row filter.
pub fn create_publication(pipeline: &CdcPipeline) -> String {
    format!(
        "CREATE PUBLICATION {} FOR TABLE {} WITH (publish = {})",
        quote_ident(&pipeline.publication_name()),
        table_list(pipeline, false),
        quote_literal(PUBLISHED_OPERATIONS)
    )
}

/// What the row filters are on the server, for [`reconcile_publication`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowFilterState {
    /// The publication's tables that have a row filter, with it as Postgres prints it
    /// (`rowfilter` of [`PUBLICATION_TABLES_QUERY`]).
    pub published: BTreeMap<QualifiedTable, String>,
    /// The declared row filters as Postgres prints them, read from the probe publication
    /// ([`row_filter_probe`]); empty when no table has one.
    pub declared: BTreeMap<QualifiedTable, String>,
}

/// Creates the probe publication [`ROW_FILTER_PROBE_PUBLICATION`] holding the tables with a row
/// filter, each with it; `None` when no table has one. Run it in a transaction, read the probe's
/// filters with [`PUBLICATION_TABLES_QUERY`] and roll back: Postgres prints a filter in its own
/// form (`((status)::text = 'shipped'::text)`), so the declared filters are compared with the
/// published ones in that form, and nothing stays behind.
pub fn row_filter_probe(pipeline: &CdcPipeline) -> Option<String> {
    pipeline
        .spec
        .source
        .tables
        .iter()
        .any(|t| !t.row_filter.is_empty())
        .then(|| {
            format!(
                "CREATE PUBLICATION {} FOR TABLE {} WITH (publish = 'insert')",
                quote_ident(ROW_FILTER_PROBE_PUBLICATION),
                table_list(pipeline, true)
            )
        })
}

/// The statements that take the publication from its current state to the declared one: `current` is
/// `None` when it does not exist (read with [`PUBLICATION_EXISTS_QUERY`]), else its tables (read with
/// [`PUBLICATION_TABLES_QUERY`]); `filters` the published and declared row filters. One `SET TABLE`
/// when the tables or a filter differ (Postgres replaces every filter with it). Empty when nothing
/// has to change.
pub fn reconcile_publication(
    pipeline: &CdcPipeline,
    current: Option<&BTreeSet<QualifiedTable>>,
    filters: &RowFilterState,
) -> Vec<String> {
    let declared = declared_tables(pipeline);
    match current {
        None => vec![create_publication(pipeline)],
        Some(current)
            if declared.iter().cloned().collect::<BTreeSet<_>>() == *current
                && filters.published == filters.declared =>
        {
            vec![]
        }
        Some(_) => vec![format!(
            "ALTER PUBLICATION {} SET TABLE {}",
            quote_ident(&pipeline.publication_name()),
            table_list(pipeline, false)
        )],
    }
}

/// `ALTER TABLE ... REPLICA IDENTITY FULL` for every captured table, when the spec asks for it (when it
/// does not, replica identities are left as they are).
pub fn replica_identity_statements(pipeline: &CdcPipeline) -> Vec<String> {
    if !pipeline.spec.source.replica_identity_full {
        return vec![];
    }
    declared_tables(pipeline)
        .iter()
        .map(|t| format!("ALTER TABLE {} REPLICA IDENTITY FULL", t.quoted()))
        .collect()
}

/// Like [`replica_identity_statements`], leaving out the tables whose `relreplident` (by table name,
/// read with [`REPLICA_IDENTITY_QUERY`]) is already `f`.
pub fn reconcile_replica_identity(
    pipeline: &CdcPipeline,
    current: &BTreeMap<String, String>,
) -> Vec<String> {
    if !pipeline.spec.source.replica_identity_full {
        return vec![];
    }
    declared_tables(pipeline)
        .iter()
        .filter(|t| current.get(&t.name).map(String::as_str) != Some(REPLICA_IDENTITY_FULL))
        .map(|t| format!("ALTER TABLE {} REPLICA IDENTITY FULL", t.quoted()))
        .collect()
}

/// The first `server_version_num` with failover slots (PostgreSQL 17).
pub const FAILOVER_MIN_SERVER_VERSION: i32 = 170_000;

/// The server's version as a number (`150010` for 15.10): one row, one `int4`.
pub const SERVER_VERSION_QUERY: &str = "SELECT current_setting('server_version_num')::int4";

/// Creates the logical replication slot (`pgoutput`) unless it exists, as a failover slot when
/// `failover` (PostgreSQL 17+: `pg_create_logical_replication_slot`'s fifth argument; older
/// servers have no such argument); returns one row with the slot's name and consistent point when
/// created, no row otherwise.
pub fn create_slot(slot: &str, failover: bool) -> String {
    let slot = quote_literal(slot);
    // NB: temporary false, two_phase false (pgoutput's default), failover true.
    let failover = if failover { ", false, false, true" } else { "" };
    format!(
        "SELECT slot_name::text, lsn::text FROM pg_catalog.pg_create_logical_replication_slot({slot}, {}{failover}) \
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = {slot})",
        quote_literal(OUTPUT_PLUGIN)
    )
}

/// Forgets the native capture's snapshot progress of `slot` (`cdcstar.snapshot_progress`, when the
/// capture created that table): a slot created anew streams only what is committed after it, so
/// the capture must snapshot every table again.
pub fn reset_snapshot_progress(slot: &str) -> String {
    format!(
        "DO $cdcstar$BEGIN IF pg_catalog.to_regclass('cdcstar.snapshot_progress') IS NOT NULL THEN \
         DELETE FROM cdcstar.snapshot_progress WHERE slot = {}; END IF; END$cdcstar$",
        quote_literal(slot)
    )
}

/// The statements that give the pipeline a new slot (none existed, or an invalidated one was
/// dropped): its snapshot progress is forgotten first, then the slot is created, so a capture that
/// finds the new slot always finds the progress reset and snapshots every table.
pub fn new_slot_statements(pipeline: &CdcPipeline) -> Vec<String> {
    let slot = pipeline.slot_name();
    vec![
        reset_snapshot_progress(&slot),
        create_slot(&slot, pipeline.spec.source.slot.failover),
    ]
}

/// The statements that replace the pipeline's invalidated slot: end its reader, drop it, and with
/// the native engine give the pipeline a new one ([`new_slot_statements`]); Redpanda Connect
/// creates its own slot again when it restarts.
pub fn recreate_slot_statements(pipeline: &CdcPipeline) -> Vec<String> {
    let slot = pipeline.slot_name();
    let mut statements = vec![terminate_slot_reader(&slot), drop_slot(&slot)];
    if pipeline.spec.capture.engine == CaptureEngine::Native {
        statements.extend(new_slot_statements(pipeline));
    }
    statements
}

/// Ends the session reading the slot, if any (a slot in use cannot be dropped).
pub fn terminate_slot_reader(slot: &str) -> String {
    format!(
        "SELECT pg_catalog.pg_terminate_backend(active_pid) FROM pg_catalog.pg_replication_slots \
         WHERE slot_name = {} AND active_pid IS NOT NULL",
        quote_literal(slot)
    )
}

/// Drops the slot if it exists (the WAL it retained is released).
pub fn drop_slot(slot: &str) -> String {
    format!(
        "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots \
         WHERE slot_name = {}",
        quote_literal(slot)
    )
}

/// Drops the publication if it exists.
pub fn drop_publication(publication: &str) -> String {
    format!("DROP PUBLICATION IF EXISTS {}", quote_ident(publication))
}

/// The publication the capture reads: ours for the native engine, Redpanda Connect's own
/// `pglog_stream_<slot>` for the `redpandaConnect` engine.
pub fn effective_publication_name(pipeline: &CdcPipeline) -> String {
    match pipeline.spec.capture.engine {
        CaptureEngine::Native => pipeline.publication_name(),
        CaptureEngine::RedpandaConnect => format!("pglog_stream_{}", pipeline.slot_name()),
    }
}

/// Every statement of a fresh install, in order: replica identities, then (native engine) the
/// publication and the slot. What `plan` prints for Postgres.
pub fn install_statements(pipeline: &CdcPipeline) -> Vec<String> {
    let mut statements = replica_identity_statements(pipeline);
    if pipeline.spec.capture.engine == CaptureEngine::Native {
        statements.push(create_publication(pipeline));
        statements.extend(new_slot_statements(pipeline));
    }
    statements
}

/// Every statement of the cleanup when the pipeline is deleted, in order: stop the slot's reader,
/// drop the slot, drop the publication.
pub fn cleanup_statements(pipeline: &CdcPipeline) -> Vec<String> {
    let slot = pipeline.slot_name();
    vec![
        terminate_slot_reader(&slot),
        drop_slot(&slot),
        drop_publication(&effective_publication_name(pipeline)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{assert_golden, shop_pipeline};
    use pretty_assertions::assert_eq;

    #[test]
    fn where_all_ands_the_conditions_and_is_empty_without_any() {
        assert_eq!(where_all([]), "");
        assert_eq!(where_all(["(a = 1)".to_owned()]), "WHERE (a = 1)");
        assert_eq!(
            where_all(["(a = 1)".to_owned(), "\"id\" > '7'".to_owned()]),
            "WHERE (a = 1) AND \"id\" > '7'"
        );
    }

    #[test]
    fn golden_install_and_cleanup_statements_of_the_example() {
        let pipeline = shop_pipeline();
        let mut text = String::from("-- install\n");
        for statement in install_statements(&pipeline) {
            text.push_str(&statement);
            text.push_str(";\n");
        }
        text.push_str("-- cleanup\n");
        for statement in cleanup_statements(&pipeline) {
            text.push_str(&statement);
            text.push_str(";\n");
        }
        assert_golden("postgres-install.sql", &text);
    }

    #[test]
    fn identifiers_and_literals_are_quoted_with_doubled_quotes() {
        assert_eq!(quote_ident("order"), "\"order\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(
            QualifiedTable::new("public", "orderItem").quoted(),
            "\"public\".\"orderItem\""
        );
    }

    #[test]
    fn create_publication_lists_every_table_quoted() {
        assert_eq!(
            create_publication(&shop_pipeline()),
            "CREATE PUBLICATION \"cdcstar_shop\" FOR TABLE \"public\".\"customer\", \
             \"public\".\"product\", \"public\".\"order\", \"public\".\"orderitem\" \
             WITH (publish = 'insert, update, delete, truncate')"
        );
    }

    #[test]
    fn missing_publication_is_created() {
        let pipeline = shop_pipeline();
        assert_eq!(
            reconcile_publication(&pipeline, None, &RowFilterState::default()),
            [create_publication(&pipeline)]
        );
    }

    #[test]
    fn publication_with_the_declared_tables_is_left_alone() {
        let pipeline = shop_pipeline();
        let current: BTreeSet<_> = declared_tables(&pipeline).into_iter().collect();
        assert!(
            reconcile_publication(&pipeline, Some(&current), &RowFilterState::default()).is_empty()
        );
    }

    #[test]
    fn publication_with_other_tables_is_set_to_the_declared_ones() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.source.tables.truncate(2);
        let current: BTreeSet<_> = [
            QualifiedTable::new("public", "customer"),
            QualifiedTable::new("public", "order"),
        ]
        .into();
        assert_eq!(
            reconcile_publication(&pipeline, Some(&current), &RowFilterState::default()),
            [
                "ALTER PUBLICATION \"cdcstar_shop\" SET TABLE \"public\".\"customer\", \"public\".\"product\""
            ]
        );
    }

    #[test]
    fn replica_identity_full_only_where_missing_and_only_when_asked() {
        let mut pipeline = shop_pipeline();
        assert_eq!(
            replica_identity_statements(&pipeline)[2],
            "ALTER TABLE \"public\".\"order\" REPLICA IDENTITY FULL"
        );
        let current: BTreeMap<String, String> = [
            ("customer".to_owned(), "f".to_owned()),
            ("product".to_owned(), "d".to_owned()),
            ("order".to_owned(), "f".to_owned()),
        ]
        .into();
        assert_eq!(
            reconcile_replica_identity(&pipeline, &current),
            [
                "ALTER TABLE \"public\".\"product\" REPLICA IDENTITY FULL",
                "ALTER TABLE \"public\".\"orderitem\" REPLICA IDENTITY FULL"
            ]
        );
        pipeline.spec.source.replica_identity_full = false;
        assert!(replica_identity_statements(&pipeline).is_empty());
        assert!(reconcile_replica_identity(&pipeline, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn slot_statements_pass_the_name_as_a_literal() {
        assert_eq!(
            create_slot("cdcstar_shop", false),
            "SELECT slot_name::text, lsn::text FROM pg_catalog.pg_create_logical_replication_slot(\
             'cdcstar_shop', 'pgoutput') WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots \
             WHERE slot_name = 'cdcstar_shop')"
        );
        assert_eq!(
            drop_slot("s'x"),
            "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots \
             WHERE slot_name = 's''x'"
        );
        assert_eq!(drop_publication("p"), "DROP PUBLICATION IF EXISTS \"p\"");
        assert!(
            create_slot("s", true).contains(
                "pg_create_logical_replication_slot('s', 'pgoutput', false, false, true)"
            ),
            "{}",
            create_slot("s", true)
        );
        assert!(reset_snapshot_progress("s'x").contains("WHERE slot = 's''x';"));
    }

    #[test]
    fn install_plan_for_the_native_engine() {
        let statements = install_statements(&shop_pipeline());
        assert_eq!(statements.len(), 7);
        assert!(statements[4].starts_with("CREATE PUBLICATION \"cdcstar_shop\""));
        assert!(statements[5].contains("DELETE FROM cdcstar.snapshot_progress"));
        assert!(statements[6].contains("pg_create_logical_replication_slot('cdcstar_shop'"));
    }

    #[test]
    fn a_slot_is_recreated_after_its_reader_ends_and_its_progress_is_reset() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.source.slot.failover = true;
        let statements = recreate_slot_statements(&pipeline);
        assert_eq!(
            statements,
            [
                terminate_slot_reader("cdcstar_shop"),
                drop_slot("cdcstar_shop"),
                reset_snapshot_progress("cdcstar_shop"),
                create_slot("cdcstar_shop", true),
            ]
        );
        // Redpanda Connect creates its own slot again.
        pipeline.spec.capture.engine = CaptureEngine::RedpandaConnect;
        assert_eq!(recreate_slot_statements(&pipeline).len(), 2);
    }

    #[test]
    fn redpanda_connect_manages_its_own_publication_and_slot() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.capture.engine = CaptureEngine::RedpandaConnect;
        let statements = install_statements(&pipeline);
        assert_eq!(statements.len(), 4);
        assert!(
            statements
                .iter()
                .all(|s| s.contains("REPLICA IDENTITY FULL"))
        );
        assert_eq!(
            cleanup_statements(&pipeline)[2],
            "DROP PUBLICATION IF EXISTS \"pglog_stream_cdcstar_shop\""
        );
    }

    #[test]
    fn row_filters_render_quoted_conditions_into_the_publication() {
        use crate::pipeline::{FilterOp, RowCondition};
        let mut pipeline = shop_pipeline();
        let condition = |column: &str, op, value: Option<&str>, values: &[&str]| RowCondition {
            column: column.into(),
            op,
            value: value.map(str::to_owned),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        };
        pipeline.spec.source.tables[2].row_filter = vec![
            condition("status", FilterOp::In, None, &["paid", "it's"]),
            condition("status", FilterOp::NotIn, None, &["x"]),
            condition("total", FilterOp::Ne, Some(r"a\b"), &[]),
            condition("customerId", FilterOp::IsNull, None, &[]),
        ];
        assert_eq!(
            row_filter_sql(&pipeline.spec.source.tables[2]).unwrap(),
            r#"("status" = 'paid' OR "status" = 'it''s') AND ("status" <> 'x') AND ("total" <> E'a\\b') AND ("customerId" IS NULL)"#
        );
        assert_eq!(row_filter_sql(&pipeline.spec.source.tables[0]), None);
        let create = create_publication(&pipeline);
        assert!(
            create.contains(r#""public"."order" WHERE (("status" = 'paid'"#),
            "{create}"
        );
        assert!(create.contains(r#""public"."orderitem" WITH"#), "{create}");
        let probe = row_filter_probe(&pipeline).unwrap();
        assert!(
            probe.starts_with(
                r#"CREATE PUBLICATION "cdcstar_row_filter_probe" FOR TABLE "public"."order" WHERE"#
            ),
            "{probe}"
        );
        assert!(
            !probe.contains("customer\""),
            "only filtered tables: {probe}"
        );
        assert_eq!(row_filter_probe(&shop_pipeline()), None);
    }

    #[test]
    fn a_changed_row_filter_sets_the_tables_again() {
        let pipeline = shop_pipeline();
        let current: BTreeSet<_> = declared_tables(&pipeline).into_iter().collect();
        let order = QualifiedTable::new("public", "order");
        let filters = RowFilterState {
            published: [(order.clone(), "(id > 1)".to_owned())].into(),
            declared: [(order, "(id > 2)".to_owned())].into(),
        };
        let statements = reconcile_publication(&pipeline, Some(&current), &filters);
        assert_eq!(statements.len(), 1);
        assert!(statements[0].starts_with("ALTER PUBLICATION \"cdcstar_shop\" SET TABLE"));
        let same = RowFilterState {
            declared: filters.published.clone(),
            published: filters.published,
        };
        assert!(reconcile_publication(&pipeline, Some(&current), &same).is_empty());
    }
}
