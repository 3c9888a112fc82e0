//! The tables a pipeline keeps about itself next to its star tables, in the same ClickHouse
//! database: what the sink reports of its work, read by the operator for the pipeline's status and
//! by analysts. Pure: the DDL, the statements the sink inserts with, the queries that read them and
//! the rows they answer ([`ValueAdjustment`], [`Watermark`], [`Verification`]; `clickhouse::Row`
//! with the `clickhouse-rows` feature, for the sink and the operator that read them).
//!
//! - [`VALUE_ADJUSTMENTS`] (`cdcstar_value_adjustments`, `SummingMergeTree`): per pipeline, star table,
//!   column and `onUnrepresentable` policy, how many values the column's type could not hold and the
//!   policy replaced, and when the last one was seen. The sink adds the counts of each flush after
//!   the flush's rows are written; a batch replayed after a crash (or a rebalance) before its offsets
//!   were committed is counted again, which is acceptable for a counter (it never undercounts).
//! - [`PARTITION_POSITIONS`] (`cdcstar_partition_positions`, `ReplacingMergeTree(commit_lsn)`): per
//!   pipeline, topic and partition, the highest commit position (`commitLsn`, `commitTime` of the
//!   envelope: a change's transaction, or a heartbeat) the sink has applied from that partition. A
//!   sink replica writes the partitions it owns after each flush's rows (a replay writes a lower or
//!   equal position, which the version keeps below the higher one), and a zero position for every
//!   partition of the pipeline's topics when it starts, so a partition not applied yet holds the
//!   watermark at zero instead of being absent from the minimum.
//! - [`WATERMARK`] (`cdcstar_watermark`, a view): per pipeline, the minimum over every partition of
//!   its highest applied position. Since each partition carries its changes in commit order, and
//!   heartbeats move an idle partition forward, every change committed at or before `commit_lsn` is
//!   applied in every star table: the star schema is consistent as of `commit_time` (complete up to
//!   it; later changes may be visible too). Zero until every partition has applied a position.
//! - [`VERIFICATIONS`] (`cdcstar_verifications`, `ReplacingMergeTree(verified_at)`): per pipeline
//!   and star table, the last result of `cdcstar-sink verify` (rows checked, mismatches remaining
//!   with their first keys, repaired, skipped, or why the table was not verified), written by the
//!   verifier after its last round ([`verifications_query`] reads the newest per table).
//!
//! Several pipelines may write into one database, so every row carries the pipeline
//! ([`CdcPipeline::status_key`], `<namespace>/<name>`) and every query filters on it. The tables are
//! created with the star tables (`plan` prints them); they are not star tables: a dimension or fact
//! may not use their names, and `dropTablesOnDelete` deletes the pipeline's rows from them instead of
//! dropping them.
//!
//! The column types are written exactly as ClickHouse prints them (`system.columns.type`), so an
//! existing table is compared with a string comparison ([`StatusTable::migrate_from`]).
//!
//! Over 400 lines: the DDL, inserts and reads of the status tables belong together (one schema); a
//! third is tests.

use serde::Deserialize;

use crate::clickhouse_ddl::{Drift, Migration, quote_ident, quote_string};
use crate::clickhouse_placement::{MergeTree, Placement};
use crate::pipeline::CdcPipeline;

/// A table the sink writes beside the star tables, or a view over one.
#[derive(Debug, Clone, Copy)]
pub struct StatusTable {
    /// Table name, the same in every pipeline's database.
    pub name: &'static str,
    /// `(name, type)` in table order, types as ClickHouse prints them.
    pub columns: &'static [(&'static str, &'static str)],
    /// A table's engine or a view's query.
    pub body: Body,
}

/// What a status table is.
#[derive(Debug, Clone, Copy)]
pub enum Body {
    /// A table with this engine.
    Table(TableEngine),
    /// A view: its `SELECT`, given the database.
    View(fn(&str) -> String),
}

/// A status table's `MergeTree`-family engine.
#[derive(Debug, Clone, Copy)]
pub struct TableEngine {
    /// `SummingMergeTree`, `ReplacingMergeTree`.
    pub family: &'static str,
    /// The engine's one argument: the column summed, or the version.
    pub argument: &'static str,
    /// The `ORDER BY` columns; a cluster shards rows by them too, so the rows a merge combines meet.
    pub key: &'static [&'static str],
}

/// `cdcstar_value_adjustments`: values the sink replaced under their column's `onUnrepresentable`
/// policy. `values` is summed by merges and `last_seen` keeps its maximum; read it aggregated
/// ([`value_adjustments_query`]), since merges happen whenever ClickHouse gets to them.
pub const VALUE_ADJUSTMENTS: StatusTable = StatusTable {
    name: "cdcstar_value_adjustments",
    columns: &[
        ("pipeline", "LowCardinality(String)"),
        ("table", "LowCardinality(String)"),
        ("column", "LowCardinality(String)"),
        ("policy", "LowCardinality(String)"),
        ("values", "UInt64"),
        (
            "last_seen",
            "SimpleAggregateFunction(max, DateTime64(3, 'UTC'))",
        ),
    ],
    body: Body::Table(TableEngine {
        family: "SummingMergeTree",
        argument: "values",
        key: &["pipeline", "table", "column", "policy"],
    }),
};

/// `cdcstar_partition_positions`: the highest commit position applied per topic partition, the
/// version of its `ReplacingMergeTree`; `applied_at` is when the sink wrote it. Read the newest row
/// per partition with `max`/`argMax` (the view does), since merges happen whenever ClickHouse gets to
/// them.
pub const PARTITION_POSITIONS: StatusTable = StatusTable {
    name: "cdcstar_partition_positions",
    columns: &[
        ("pipeline", "LowCardinality(String)"),
        ("topic", "LowCardinality(String)"),
        ("partition", "Int32"),
        ("commit_lsn", "UInt64"),
        ("commit_time", "DateTime64(6, 'UTC')"),
        ("applied_at", "DateTime64(3, 'UTC')"),
    ],
    body: Body::Table(TableEngine {
        family: "ReplacingMergeTree",
        argument: "commit_lsn",
        key: &["pipeline", "topic", "partition"],
    }),
};

/// `cdcstar_watermark`: per pipeline, `commit_lsn` and `commit_time` up to which every change is
/// applied in every star table (the minimum over partitions of the highest position each applied;
/// both minima are taken separately, so each is a safe bound on its own), and how many partitions
/// it covers.
pub const WATERMARK: StatusTable = StatusTable {
    name: "cdcstar_watermark",
    columns: &[
        ("pipeline", "LowCardinality(String)"),
        ("commit_lsn", "UInt64"),
        ("commit_time", "DateTime64(6, 'UTC')"),
        ("partitions", "UInt64"),
    ],
    body: Body::View(watermark_select),
};

fn watermark_select(database: &str) -> String {
    format!(
        "SELECT `pipeline`, min(`applied_lsn`) AS `commit_lsn`, min(`applied_time`) AS `commit_time`, \
         count() AS `partitions` \
         FROM (SELECT `pipeline`, `topic`, `partition`, max(`commit_lsn`) AS `applied_lsn`, \
         argMax(`commit_time`, `commit_lsn`) AS `applied_time` FROM {} \
         GROUP BY `pipeline`, `topic`, `partition`) \
         GROUP BY `pipeline`",
        PARTITION_POSITIONS.qualified_name(database)
    )
}

/// `cdcstar_verifications`: the last verification of each star table of a pipeline against
/// Postgres; the version is the time it ended, so the newest result replaces the older ones.
pub const VERIFICATIONS: StatusTable = StatusTable {
    name: "cdcstar_verifications",
    columns: &[
        ("pipeline", "LowCardinality(String)"),
        ("table", "LowCardinality(String)"),
        ("verified_at", "DateTime64(3, 'UTC')"),
        ("rows_checked", "UInt64"),
        ("mismatches", "UInt64"),
        ("mismatch_keys", "Array(String)"),
        ("repaired", "UInt64"),
        ("skipped", "UInt64"),
        ("not_verified", "String"),
    ],
    body: Body::Table(TableEngine {
        family: "ReplacingMergeTree",
        argument: "verified_at",
        key: &["pipeline", "table"],
    }),
};

/// How many mismatching keys a row of [`VERIFICATIONS`] lists (the verifier's output has them all).
pub const VERIFICATION_KEYS_KEPT: usize = 20;

/// Every status table, in creation order (a view after the table it reads).
pub const STATUS_TABLES: [StatusTable; 4] = [
    VALUE_ADJUSTMENTS,
    PARTITION_POSITIONS,
    WATERMARK,
    VERIFICATIONS,
];

/// Whether a star table may not be called `name`, because a status table is.
pub fn is_reserved_table_name(name: &str) -> bool {
    STATUS_TABLES.iter().any(|table| table.name == name)
}

impl StatusTable {
    /// `` `database`.`name` ``.
    pub fn qualified_name(&self, database: &str) -> String {
        format!("{}.{}", quote_ident(database), quote_ident(self.name))
    }

    /// The quoted column names, comma-separated, in table order.
    pub fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _)| quote_ident(name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `CREATE TABLE IF NOT EXISTS` (or `CREATE VIEW IF NOT EXISTS`) in `database`, placed as
    /// `placement` says (two tables on a cluster).
    pub fn create_statements(&self, placement: &Placement, database: &str) -> Vec<String> {
        match self.body {
            Body::Table(engine) => {
                let key = engine
                    .key
                    .iter()
                    .map(|name| quote_ident(name))
                    .collect::<Vec<_>>()
                    .join(", ");
                let columns = self
                    .columns
                    .iter()
                    .map(|(name, ty)| format!("    {} {ty}", quote_ident(name)))
                    .collect::<Vec<_>>()
                    .join(",\n");
                placement.create_table(
                    database,
                    self.name,
                    &columns,
                    &MergeTree {
                        family: engine.family,
                        args: &quote_ident(engine.argument),
                        order_by: &key,
                        settings: None,
                        sharding_key: &format!("cityHash64({key})"),
                    },
                )
            }
            Body::View(select) => {
                vec![placement.create_view(database, self.name, &select(database), false)]
            }
        }
    }

    /// The insert the sink sends (into the database its client is set to), rows in `JSONEachRow`
    /// with every column of [`StatusTable::columns`]; `DateTime64` values as `YYYY-MM-DD hh:mm:ss.fff`
    /// in UTC.
    pub fn insert_statement(&self) -> String {
        format!(
            "INSERT INTO {} ({}) FORMAT JSONEachRow",
            quote_ident(self.name),
            self.column_list()
        )
    }

    /// Removes the rows of `pipeline` (with `dropTablesOnDelete`; the table may hold other pipelines'
    /// rows, so it is kept); `None` for a view, which holds no rows.
    pub fn delete_statement(&self, pipeline: &CdcPipeline) -> Option<String> {
        match self.body {
            Body::Table(_) => Some(Placement::of(pipeline).delete_rows(
                pipeline.clickhouse_database(),
                self.name,
                &format!("`pipeline` = {}", quote_string(&pipeline.status_key())),
            )),
            Body::View(_) => None,
        }
    }

    /// What brings the existing table (its columns as `system.columns` lists them, `None` when it
    /// does not exist) to this one, as for a star table: created when missing, a missing column added;
    /// a column typed otherwise or unknown is drift, reported and left alone (the sink's inserts into
    /// the table fail until it is fixed). A view whose columns differ is replaced (it holds nothing).
    pub fn migrate_from(
        &self,
        placement: &Placement,
        database: &str,
        existing: Option<&[(String, String)]>,
    ) -> Migration {
        let Some(existing) = existing else {
            return Migration {
                statements: self.create_statements(placement, database),
                drift: vec![],
            };
        };
        if let Body::View(select) = self.body {
            let same = existing.len() == self.columns.len()
                && existing
                    .iter()
                    .zip(self.columns)
                    .all(|((n, t), (name, ty))| n == name && t == ty);
            return Migration {
                statements: if same {
                    vec![]
                } else {
                    vec![placement.create_view(database, self.name, &select(database), true)]
                },
                drift: vec![],
            };
        }
        let mut migration = Migration::default();
        for (name, ty) in self.columns {
            match existing.iter().find(|(n, _)| n == name) {
                None => migration
                    .statements
                    .extend(placement.add_column(database, self.name, name, ty)),
                Some((_, found)) if found != ty => migration.drift.push(Drift::TypeChanged {
                    table: self.name.to_owned(),
                    column: (*name).to_owned(),
                    existing: found.clone(),
                    declared: (*ty).to_owned(),
                }),
                Some(_) => {}
            }
        }
        for (name, ty) in existing {
            if !self.columns.iter().any(|(n, _)| n == name) {
                migration.drift.push(Drift::Undeclared {
                    table: self.name.to_owned(),
                    column: name.clone(),
                    existing: ty.clone(),
                });
            }
        }
        migration
    }
}

/// The deletion of `pipeline`'s rows from every status table (after its star tables were dropped,
/// with `dropTablesOnDelete`). The tables stay: other pipelines writing to the database share them.
pub fn delete_statements(pipeline: &CdcPipeline) -> Vec<String> {
    STATUS_TABLES
        .iter()
        .filter_map(|table| table.delete_statement(pipeline))
        .collect()
}

/// The adjustments of one pipeline, one row per (star table, column, policy), summed over every
/// flush: columns `table`, `column`, `policy` (String), `values` (UInt64) and `last_seen_ms` (Int64,
/// milliseconds since the epoch), ordered by table and column. Bind `{pipeline:String}` to
/// [`CdcPipeline::status_key`].
pub fn value_adjustments_query(database: &str) -> String {
    format!(
        "SELECT toString(`table`) AS `table`, toString(`column`) AS `column`, \
         toString(`policy`) AS `policy`, sum(`values`) AS `values`, \
         toUnixTimestamp64Milli(max(`last_seen`)) AS `last_seen_ms` \
         FROM {} WHERE `pipeline` = {{pipeline:String}} \
         GROUP BY `table`, `column`, `policy` ORDER BY `table`, `column`, `policy`",
        VALUE_ADJUSTMENTS.qualified_name(database)
    )
}

/// The watermark of one pipeline: columns `commit_lsn` (UInt64), `commit_time_us` (Int64,
/// microseconds since the epoch) and `partitions` (UInt64); no row before the sink wrote any position.
/// Bind `{pipeline:String}` to [`CdcPipeline::status_key`].
pub fn watermark_query(database: &str) -> String {
    format!(
        "SELECT `commit_lsn`, toUnixTimestamp64Micro(`commit_time`) AS `commit_time_us`, `partitions` \
         FROM {} WHERE `pipeline` = {{pipeline:String}}",
        WATERMARK.qualified_name(database)
    )
}

/// The newest verification of each star table of one pipeline: columns `table` (String),
/// `verified_at_ms` (Int64, milliseconds since the epoch), `rows_checked`, `mismatches`, `repaired`,
/// `skipped` (UInt64), `mismatch_keys` (Array(String)), `not_verified` (String), ordered by table.
/// Bind `{pipeline:String}` to [`CdcPipeline::status_key`].
pub fn verifications_query(database: &str) -> String {
    format!(
        "SELECT toString(`table`) AS `table`, \
         toUnixTimestamp64Milli(max(`verified_at`)) AS `verified_at_ms`, \
         argMax(`rows_checked`, `verified_at`) AS `rows_checked`, \
         argMax(`mismatches`, `verified_at`) AS `mismatches`, \
         argMax(`repaired`, `verified_at`) AS `repaired`, \
         argMax(`skipped`, `verified_at`) AS `skipped`, \
         argMax(`mismatch_keys`, `verified_at`) AS `mismatch_keys`, \
         argMax(`not_verified`, `verified_at`) AS `not_verified` \
         FROM {} WHERE `pipeline` = {{pipeline:String}} GROUP BY `table` ORDER BY `table`",
        VERIFICATIONS.qualified_name(database)
    )
}

/// One row of [`value_adjustments_query`]: values of a star-table column replaced under one policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "clickhouse-rows", derive(clickhouse::Row))]
pub struct ValueAdjustment {
    pub table: String,
    pub column: String,
    /// `clamp` or `null`.
    pub policy: String,
    /// Values replaced.
    pub values: u64,
    /// When the last one was written, milliseconds since the epoch.
    pub last_seen_ms: i64,
}

/// The row of [`watermark_query`]: the pipeline's "consistent up to".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "clickhouse-rows", derive(clickhouse::Row))]
pub struct Watermark {
    /// Every change committed at or before this LSN is applied (0: not every partition yet).
    pub commit_lsn: u64,
    /// Commit time of the same bound, microseconds since the Unix epoch.
    pub commit_time_us: i64,
    /// Partitions the minimum is over.
    pub partitions: u64,
}

/// One row of [`verifications_query`]: the newest verification of a star table (fields in the
/// query's column order: rows are read by position).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "clickhouse-rows", derive(clickhouse::Row))]
pub struct Verification {
    pub table: String,
    /// When it ended, milliseconds since the epoch.
    pub verified_at_ms: i64,
    /// Source rows compared.
    pub rows_checked: u64,
    /// Keys still differing.
    pub mismatches: u64,
    /// Keys repaired.
    pub repaired: u64,
    /// Keys undecided.
    pub skipped: u64,
    /// The first keys still differing.
    pub mismatch_keys: Vec<String>,
    /// Why the table was not verified (empty: it was).
    pub not_verified: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::shop_pipeline;
    use pretty_assertions::assert_eq;

    fn existing(table: &StatusTable) -> Vec<(String, String)> {
        table
            .columns
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect()
    }

    /// Value adjustments are summed per pipeline, table, column and policy; positions keep the
    /// highest commit LSN per topic partition; the sink inserts every column as JSON rows.
    #[test]
    fn tables_the_sink_writes_are_created_and_inserted_as_declared() {
        let expected = [
            (
                &VALUE_ADJUSTMENTS,
                "CREATE TABLE IF NOT EXISTS `local`.`cdcstar_value_adjustments` (\n    \
                 `pipeline` LowCardinality(String),\n    `table` LowCardinality(String),\n    \
                 `column` LowCardinality(String),\n    `policy` LowCardinality(String),\n    \
                 `values` UInt64,\n    \
                 `last_seen` SimpleAggregateFunction(max, DateTime64(3, 'UTC'))\n) \
                 ENGINE = SummingMergeTree(`values`) ORDER BY (`pipeline`, `table`, `column`, `policy`)",
                "INSERT INTO `cdcstar_value_adjustments` (`pipeline`, `table`, `column`, `policy`, \
                 `values`, `last_seen`) FORMAT JSONEachRow",
            ),
            (
                &PARTITION_POSITIONS,
                "CREATE TABLE IF NOT EXISTS `local`.`cdcstar_partition_positions` (\n    \
                 `pipeline` LowCardinality(String),\n    `topic` LowCardinality(String),\n    \
                 `partition` Int32,\n    `commit_lsn` UInt64,\n    \
                 `commit_time` DateTime64(6, 'UTC'),\n    `applied_at` DateTime64(3, 'UTC')\n) \
                 ENGINE = ReplacingMergeTree(`commit_lsn`) ORDER BY (`pipeline`, `topic`, `partition`)",
                "INSERT INTO `cdcstar_partition_positions` (`pipeline`, `topic`, `partition`, \
                 `commit_lsn`, `commit_time`, `applied_at`) FORMAT JSONEachRow",
            ),
        ];
        for (table, create, insert) in expected {
            assert_eq!(
                table.create_statements(&Placement::default(), "local"),
                [create]
            );
            assert_eq!(table.insert_statement(), insert);
        }
    }

    #[test]
    fn adjustments_are_read_summed_for_one_pipeline() {
        let query = value_adjustments_query("local");
        assert!(
            query.contains(
                "FROM `local`.`cdcstar_value_adjustments` WHERE `pipeline` = {pipeline:String}"
            ),
            "{query}"
        );
        assert!(query.contains("sum(`values`) AS `values`"), "{query}");
        assert!(
            query.contains("GROUP BY `table`, `column`, `policy`"),
            "{query}"
        );
    }

    #[test]
    fn a_missing_status_table_is_created_and_an_altered_one_reported() {
        assert_eq!(
            VALUE_ADJUSTMENTS
                .migrate_from(&Placement::default(), "local", None)
                .statements,
            VALUE_ADJUSTMENTS.create_statements(&Placement::default(), "local")
        );
        let mut columns = existing(&VALUE_ADJUSTMENTS);
        assert_eq!(
            VALUE_ADJUSTMENTS.migrate_from(&Placement::default(), "local", Some(&columns)),
            Migration::default()
        );
        columns[4].1 = "UInt32".into();
        columns.remove(5);
        columns.push(("note".into(), "String".into()));
        let migration =
            VALUE_ADJUSTMENTS.migrate_from(&Placement::default(), "local", Some(&columns));
        assert_eq!(
            migration.statements,
            [
                "ALTER TABLE `local`.`cdcstar_value_adjustments` ADD COLUMN IF NOT EXISTS `last_seen` \
              SimpleAggregateFunction(max, DateTime64(3, 'UTC'))"
            ]
        );
        let drift: Vec<String> = migration.drift.iter().map(ToString::to_string).collect();
        assert_eq!(
            drift,
            [
                "cdcstar_value_adjustments.values is UInt32 in ClickHouse but UInt64 in the spec; change it by hand",
                "cdcstar_value_adjustments.note (String) is in ClickHouse but not in the spec; it is kept",
            ]
        );
    }

    #[test]
    fn deleting_a_pipeline_removes_only_its_rows() {
        assert_eq!(
            delete_statements(&shop_pipeline()),
            [
                "DELETE FROM `local`.`cdcstar_value_adjustments` WHERE `pipeline` = 'default/shop'",
                "DELETE FROM `local`.`cdcstar_partition_positions` WHERE `pipeline` = 'default/shop'",
                "DELETE FROM `local`.`cdcstar_verifications` WHERE `pipeline` = 'default/shop'",
            ]
        );
        let mut pipeline = shop_pipeline();
        pipeline.metadata.namespace = Some("it's".into());
        assert_eq!(
            VALUE_ADJUSTMENTS.delete_statement(&pipeline).unwrap(),
            "DELETE FROM `local`.`cdcstar_value_adjustments` WHERE `pipeline` = 'it\\'s/shop'"
        );
        assert_eq!(WATERMARK.delete_statement(&pipeline), None);
    }

    #[test]
    fn the_watermark_is_the_minimum_over_partitions_of_their_highest_position() {
        assert_eq!(
            WATERMARK.create_statements(&Placement::default(), "local")[0],
            "CREATE VIEW IF NOT EXISTS `local`.`cdcstar_watermark` AS SELECT `pipeline`, \
             min(`applied_lsn`) AS `commit_lsn`, min(`applied_time`) AS `commit_time`, \
             count() AS `partitions` FROM (SELECT `pipeline`, `topic`, `partition`, \
             max(`commit_lsn`) AS `applied_lsn`, argMax(`commit_time`, `commit_lsn`) AS `applied_time` \
             FROM `local`.`cdcstar_partition_positions` GROUP BY `pipeline`, `topic`, `partition`) \
             GROUP BY `pipeline`"
        );
        let query = watermark_query("local");
        assert!(
            query.contains("FROM `local`.`cdcstar_watermark` WHERE `pipeline` = {pipeline:String}"),
            "{query}"
        );
        assert!(
            query.contains("toUnixTimestamp64Micro(`commit_time`) AS `commit_time_us`"),
            "{query}"
        );
    }

    #[test]
    fn a_view_whose_columns_differ_is_replaced_not_reported() {
        let columns = existing(&WATERMARK);
        assert_eq!(
            WATERMARK.migrate_from(&Placement::default(), "local", Some(&columns)),
            Migration::default()
        );
        let older = &columns[..3];
        let migration = WATERMARK.migrate_from(&Placement::default(), "local", Some(older));
        assert!(migration.drift.is_empty());
        assert_eq!(
            migration.statements,
            [
                WATERMARK.create_statements(&Placement::default(), "local")[0]
                    .replace("CREATE VIEW IF NOT EXISTS", "CREATE OR REPLACE VIEW")
            ]
        );
    }

    #[test]
    fn status_table_names_are_reserved() {
        assert!(is_reserved_table_name("cdcstar_value_adjustments"));
        assert!(is_reserved_table_name("cdcstar_partition_positions"));
        assert!(is_reserved_table_name("cdcstar_watermark"));
        assert!(!is_reserved_table_name("order_fact"));
    }
}
