//! The ClickHouse side of a pipeline: the structured table schemas the sink writes to, the DDL that
//! creates them, the column migrations that evolve them, and their removal. Pure: existing columns are
//! passed in (read with [`EXISTING_COLUMNS_QUERY`]); nothing here connects.
//!
//! Every dimension and fact becomes a `ReplacingMergeTree(lsn, is_deleted)` ordered by its key, so
//! `SELECT ... FINAL` shows the latest version of each row and hides deleted ones. The columns are the
//! compiled star schema's ([`TableModel::schema_columns`]), in its order: the spec's `columns`, its
//! `lookups` (facts), then the bookkeeping columns ([`crate::star::Bookkeeping`]):
//! - `source_lsn UInt64` (facts only): the LSN of the change of the fact's own source row. Distinct from
//!   `lsn` because the sink also rewrites a fact row when a row it looks up changes; that rewrite gets a
//!   higher `lsn` (the referenced row's change) so it replaces the older version, while `source_lsn`
//!   keeps telling which source change the copied columns come from. The sink uses it to discard a
//!   replayed source change older than what the row already holds.
//! - `lsn UInt64`: the row version, the LSN of the last change applied to the row (0 for snapshot rows).
//! - `is_deleted UInt8`: 1 when the source row was deleted.
//!
//! Beside the star tables, [`install_statements`] creates the status tables the sink reports into
//! ([`crate::status_tables`]).
//!
//! Schema evolution is additive: a column added to the spec becomes `ADD COLUMN IF NOT EXISTS`; a
//! column whose type changed or that left the spec is reported as [`Drift`] and never applied (it would
//! lose data; [`compare_columns`] is the one comparison, the sink's too); the operator surfaces drift
//! in the `ClickHouseSchema` condition. Changing a table's key or `cleanupDeletedRows` after creation
//! needs a manual migration.
//!
//! Identifiers are quoted with backticks ([`quote_ident`]); types are printed from
//! [`crate::ColumnType`], never copied from the spec.
//!
//! Over 400 lines only with its tests (golden DDL, migrations, drift).

use std::collections::BTreeMap;
use std::fmt;

use crate::clickhouse_placement::{MergeTree, Placement};
use crate::pipeline::CdcPipeline;
use crate::star::{IS_DELETED_COLUMN, LSN_COLUMN, TableKind};
use crate::star_model::{SchemaColumn, TableModel};
use crate::status_tables::STATUS_TABLES;
use crate::validate::{ValidationErrors, compile};

/// Reads the columns of a table: bind `{database:String}` and `{table:String}` as query parameters;
/// rows are (`name`, `type`) in table order.
pub const EXISTING_COLUMNS_QUERY: &str = "SELECT name, type FROM system.columns \
     WHERE database = {database:String} AND table = {table:String} ORDER BY position";

/// The MergeTree setting that lets merges remove deleted rows for good.
pub const CLEANUP_SETTING: &str = "allow_experimental_replacing_merge_with_cleanup";

/// Quote a ClickHouse identifier with backticks, escaping `\` and `` ` ``: the one quoting of every
/// statement the operator and the sink send.
///
/// NB: the `clickhouse` crate reads `?` in a query as a bind placeholder; names never hold one, since
/// [`crate::validate()`] holds them to `[A-Za-z_][A-Za-z0-9_]*`.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

/// A ClickHouse string literal: single quotes, `\` and `'` escaped.
pub fn quote_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A dimension or fact table as created in ClickHouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub database: String,
    pub name: String,
    pub kind: TableKind,
    /// Captured source table it mirrors.
    pub source: String,
    /// Key column (the ORDER BY).
    pub key: String,
    /// Every column in table order, bookkeeping columns last.
    pub columns: Vec<SchemaColumn>,
    /// Whether merges may remove deleted rows ([`CLEANUP_SETTING`]).
    pub cleanup_deleted_rows: bool,
    /// One server or a cluster.
    pub placement: Placement,
}

impl TableSchema {
    /// `` `database`.`name` ``.
    pub fn qualified_name(&self) -> String {
        format!(
            "{}.{}",
            quote_ident(&self.database),
            quote_ident(&self.name)
        )
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&SchemaColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// `CREATE TABLE IF NOT EXISTS`: one statement on a server, two on a cluster
    /// ([`crate::clickhouse_placement`]).
    pub fn create_statements(&self) -> Vec<String> {
        let columns = self
            .columns
            .iter()
            .map(|c| format!("    {} {}", quote_ident(&c.name), c.column_type))
            .collect::<Vec<_>>()
            .join(",\n");
        let args = format!(
            "{}, {}",
            quote_ident(LSN_COLUMN),
            quote_ident(IS_DELETED_COLUMN)
        );
        let key = quote_ident(&self.key);
        let settings = format!("{CLEANUP_SETTING} = 1");
        self.placement.create_table(
            &self.database,
            &self.name,
            &columns,
            &MergeTree {
                family: "ReplacingMergeTree",
                args: &args,
                order_by: &key,
                settings: self.cleanup_deleted_rows.then_some(settings.as_str()),
                sharding_key: &format!("cityHash64({key})"),
            },
        )
    }

    /// `DROP TABLE IF EXISTS`: one statement on a server, two on a cluster.
    pub fn drop_statements(&self) -> Vec<String> {
        self.placement.drop_table(&self.database, &self.name)
    }

    /// What it takes to bring the existing table to this schema. `existing` holds the table's columns
    /// (name, type as ClickHouse prints it), or is `None` when the table does not exist.
    pub fn migrate_from(&self, existing: Option<&[(String, String)]>) -> Migration {
        let Some(existing) = existing else {
            return Migration {
                statements: self.create_statements(),
                drift: vec![],
            };
        };
        let mut migration = Migration::default();
        for difference in compare_columns(&self.columns, existing) {
            match difference {
                ColumnDifference::Missing(column) => {
                    migration.statements.extend(self.placement.add_column(
                        &self.database,
                        &self.name,
                        &column.name,
                        &column.column_type.to_string(),
                    ))
                }
                ColumnDifference::TypeChanged { column, existing } => {
                    migration.drift.push(Drift::TypeChanged {
                        table: self.name.clone(),
                        column: column.name.clone(),
                        existing: existing.to_owned(),
                        declared: column.column_type.to_string(),
                    })
                }
                ColumnDifference::Undeclared { name, existing } => {
                    migration.drift.push(Drift::Undeclared {
                        table: self.name.clone(),
                        column: name.to_owned(),
                        existing: existing.to_owned(),
                    })
                }
            }
        }
        migration
    }
}

/// How an existing table's column differs from the declared one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnDifference<'a> {
    /// A declared column the table lacks.
    Missing(&'a SchemaColumn),
    /// A declared column the table has with another type (as ClickHouse prints it).
    TypeChanged {
        /// The declared column, with the type the spec wants.
        column: &'a SchemaColumn,
        /// The type as ClickHouse prints it (`system.columns.type`).
        existing: &'a str,
    },
    /// A column of the table that is not declared.
    Undeclared {
        /// Name of the column only ClickHouse has.
        name: &'a str,
        /// Its type as ClickHouse prints it.
        existing: &'a str,
    },
}

/// The one drift check: how the table whose columns are `existing` (name, type as ClickHouse prints
/// it, from [`EXISTING_COLUMNS_QUERY`]) differs from `declared`; declared columns first, in their
/// order, then undeclared ones in table order. Type spellings ClickHouse prints differently
/// ([`ColumnType::is_printed_as`](crate::ColumnType::is_printed_as)) are no difference.
pub fn compare_columns<'a>(
    declared: &'a [SchemaColumn],
    existing: &'a [(String, String)],
) -> Vec<ColumnDifference<'a>> {
    let existing_types: BTreeMap<&str, &str> = existing
        .iter()
        .map(|(name, ty)| (name.as_str(), ty.as_str()))
        .collect();
    let mut differences = Vec::new();
    for column in declared {
        match existing_types.get(column.name.as_str()) {
            None => differences.push(ColumnDifference::Missing(column)),
            Some(existing) if !column.column_type.is_printed_as(existing) => {
                differences.push(ColumnDifference::TypeChanged { column, existing })
            }
            Some(_) => {}
        }
    }
    for (name, existing) in existing {
        if !declared.iter().any(|c| c.name == *name) {
            differences.push(ColumnDifference::Undeclared { name, existing });
        }
    }
    differences
}

/// A difference between the spec and an existing table that is not applied automatically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The column exists with another type.
    TypeChanged {
        table: String,
        column: String,
        /// Type in ClickHouse.
        existing: String,
        /// Type in the spec.
        declared: String,
    },
    /// The column exists in ClickHouse but not in the spec (removed or renamed); it is kept and the
    /// sink leaves it at its default.
    Undeclared {
        table: String,
        column: String,
        /// Type in ClickHouse.
        existing: String,
    },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::TypeChanged {
                table,
                column,
                existing,
                declared,
            } => write!(
                f,
                "{table}.{column} is {existing} in ClickHouse but {declared} in the spec; change it by hand"
            ),
            Drift::Undeclared {
                table,
                column,
                existing,
            } => write!(
                f,
                "{table}.{column} ({existing}) is in ClickHouse but not in the spec; it is kept"
            ),
        }
    }
}

/// Statements to run and differences left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Migration {
    /// DDL to run, in order.
    pub statements: Vec<String>,
    /// Differences that are reported, never applied.
    pub drift: Vec<Drift>,
}

/// `CREATE DATABASE IF NOT EXISTS` for the pipeline's database.
pub fn create_database(pipeline: &CdcPipeline) -> String {
    Placement::of(pipeline).create_database(pipeline.clickhouse_database())
}

/// The schema of every dimension and fact, in spec order (dimensions first), read from the compiled
/// star schema. Fails when the pipeline does not pass [`crate::validate()`], so every name and type in
/// the result is safe.
pub fn table_schemas(pipeline: &CdcPipeline) -> Result<Vec<TableSchema>, ValidationErrors> {
    let model = compile(pipeline)?;
    Ok(model
        .tables
        .iter()
        .map(|table| TableSchema::of(pipeline, table))
        .collect())
}

impl TableSchema {
    /// The schema of `table` of `pipeline`'s star schema.
    pub fn of(pipeline: &CdcPipeline, table: &TableModel) -> Self {
        TableSchema {
            database: pipeline.clickhouse_database().to_owned(),
            name: table.name.clone(),
            kind: table.kind,
            source: table.source.clone(),
            key: table.key_column().name.clone(),
            columns: table.schema_columns(),
            cleanup_deleted_rows: pipeline.spec.clickhouse.cleanup_deleted_rows,
            placement: Placement::of(pipeline),
        }
    }
}

/// Every statement of a fresh install: the database, every star table, then the status tables
/// ([`crate::status_tables`]). What `plan` prints for ClickHouse; running it again changes nothing.
pub fn install_statements(pipeline: &CdcPipeline) -> Result<Vec<String>, ValidationErrors> {
    let mut statements = vec![create_database(pipeline)];
    statements.extend(
        table_schemas(pipeline)?
            .iter()
            .flat_map(|table| table.create_statements()),
    );
    let database = pipeline.clickhouse_database();
    statements.extend(
        STATUS_TABLES
            .iter()
            .flat_map(|table| table.create_statements(&Placement::of(pipeline), database)),
    );
    Ok(statements)
}

/// `DROP TABLE IF EXISTS` for every star table (run on delete with `dropTablesOnDelete`, followed by
/// [`crate::status_tables::delete_statements`]). The database is kept: it may hold other tables.
pub fn drop_statements(pipeline: &CdcPipeline) -> Result<Vec<String>, ValidationErrors> {
    Ok(table_schemas(pipeline)?
        .iter()
        .flat_map(|table| table.drop_statements())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::star::Bookkeeping;
    use crate::star_model::ColumnRole;
    use crate::test_fixtures::{assert_golden, shop_pipeline};
    use pretty_assertions::assert_eq;

    fn schema_of(name: &str) -> TableSchema {
        table_schemas(&shop_pipeline())
            .unwrap()
            .into_iter()
            .find(|t| t.name == name)
            .unwrap()
    }

    /// `(name, type)` of a schema, as `system.columns` would list them.
    fn as_existing(schema: &TableSchema) -> Vec<(String, String)> {
        schema
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.column_type.to_string()))
            .collect()
    }

    #[test]
    fn backticks_quote_identifiers() {
        assert_eq!(quote_ident("order"), "`order`");
        assert_eq!(quote_ident("a`b\\"), "`a\\`b\\\\`");
    }

    #[test]
    fn golden_install_statements_of_the_example() {
        let statements = install_statements(&shop_pipeline()).unwrap();
        assert_golden(
            "clickhouse-install.sql",
            &(statements.join(";\n\n") + ";\n"),
        );
    }

    /// The column list of a `CREATE TABLE name (\n columns \n) ENGINE ...` statement, and the statement
    /// with that list cut to `(…)`; other statements have no list.
    fn split_column_list(statement: &str) -> (Option<&str>, String) {
        match (statement.find(" (\n"), statement.rfind("\n) ")) {
            (Some(open), Some(close)) => (
                Some(&statement[open + 3..close]),
                format!("{} (…{}", &statement[..open], &statement[close + 1..]),
            ),
            _ => (None, statement.to_owned()),
        }
    }

    /// On a cluster every table has the columns it has on one server (asserted against the
    /// single-server statements), so its golden file holds only what the cluster changes: the names,
    /// `ON CLUSTER`, the replicated engines and the `Distributed` tables.
    #[test]
    fn golden_install_statements_of_the_example_on_a_cluster() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.clickhouse.cluster = Some(crate::pipeline::ClusterSpec {
            name: "analytics".into(),
            replica_path: "/clickhouse/tables/{shard}/{database}/{table}".into(),
            replica_name: "{replica}".into(),
        });
        let on_a_cluster = install_statements(&pipeline).unwrap();
        let on_one_server = install_statements(&shop_pipeline()).unwrap();
        let column_lists = |statements: &[String]| -> Vec<String> {
            statements
                .iter()
                .filter_map(|s| split_column_list(s).0.map(str::to_owned))
                .collect()
        };
        assert_eq!(column_lists(&on_a_cluster), column_lists(&on_one_server));
        let outline: Vec<String> = on_a_cluster
            .iter()
            .map(|s| split_column_list(s).1)
            .collect();
        assert_golden(
            "clickhouse-install-cluster.sql",
            &(outline.join(";\n\n") + ";\n"),
        );
    }

    #[test]
    fn dimension_columns_end_with_lsn_and_is_deleted() {
        let customer = schema_of("customer_dim");
        let names: Vec<_> = customer.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "customer_id",
                "email",
                "name",
                "country",
                "city",
                "created_at",
                "lsn",
                "is_deleted"
            ]
        );
        assert_eq!(customer.key, "customer_id");
        assert_eq!(
            customer.column("customer_id").unwrap().role,
            ColumnRole::Source("id".into())
        );
    }

    #[test]
    fn facts_carry_lookups_and_source_lsn() {
        let order = schema_of("order_fact");
        let tail: Vec<_> = order.columns[5..]
            .iter()
            .map(|c| (c.name.as_str(), c.role.clone()))
            .collect();
        assert_eq!(
            tail,
            [
                ("customer_name", ColumnRole::Lookup(0)),
                ("customer_email", ColumnRole::Lookup(1)),
                (
                    "source_lsn",
                    ColumnRole::Bookkeeping(Bookkeeping::SourceLsn)
                ),
                ("lsn", ColumnRole::Bookkeeping(Bookkeeping::Lsn)),
                (
                    "is_deleted",
                    ColumnRole::Bookkeeping(Bookkeeping::IsDeleted)
                ),
            ]
        );
    }

    #[test]
    fn cleanup_setting_is_added_on_request() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.clickhouse.cleanup_deleted_rows = true;
        let statements = install_statements(&pipeline).unwrap();
        assert!(statements[1].ends_with(
            "ORDER BY (`customer_id`) SETTINGS allow_experimental_replacing_merge_with_cleanup = 1"
        ));
    }

    #[test]
    fn invalid_pipeline_produces_no_ddl() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.dimensions[0].columns[1].r#type = "String; DROP".into();
        let errors = install_statements(&pipeline).unwrap_err();
        assert!(errors.has_path("spec.starSchema.dimensions[0].columns[1].type"));
    }

    #[test]
    fn missing_table_is_created() {
        let schema = schema_of("product_dim");
        assert_eq!(
            schema.migrate_from(None).statements,
            schema.create_statements()
        );
    }

    #[test]
    fn up_to_date_table_needs_nothing() {
        let schema = schema_of("orderitem_fact");
        let existing = as_existing(&schema);
        assert_eq!(schema.migrate_from(Some(&existing)), Migration::default());
    }

    #[test]
    fn new_columns_are_added_and_changes_reported() {
        let schema = schema_of("customer_dim");
        let mut existing = as_existing(&schema);
        existing.retain(|(name, _)| name != "city" && name != "created_at");
        existing[1].1 = "Nullable(String)".into(); // email
        existing.push(("legacy".into(), "UInt8".into()));
        let migration = schema.migrate_from(Some(&existing));
        assert_eq!(
            migration.statements,
            [
                "ALTER TABLE `local`.`customer_dim` ADD COLUMN IF NOT EXISTS `city` String",
                "ALTER TABLE `local`.`customer_dim` ADD COLUMN IF NOT EXISTS `created_at` DateTime64(6)",
            ]
        );
        assert_eq!(
            migration.drift,
            [
                Drift::TypeChanged {
                    table: "customer_dim".into(),
                    column: "email".into(),
                    existing: "Nullable(String)".into(),
                    declared: "String".into(),
                },
                Drift::Undeclared {
                    table: "customer_dim".into(),
                    column: "legacy".into(),
                    existing: "UInt8".into(),
                },
            ]
        );
        assert_eq!(
            migration.drift[0].to_string(),
            "customer_dim.email is Nullable(String) in ClickHouse but String in the spec; change it by hand"
        );
    }

    #[test]
    fn type_spelling_differences_are_not_drift() {
        let schema = schema_of("order_fact");
        let mut existing = as_existing(&schema);
        let total = existing.iter_mut().find(|(n, _)| n == "total").unwrap();
        total.1 = "Decimal(12,2)".into();
        assert!(schema.migrate_from(Some(&existing)).drift.is_empty());
    }

    #[test]
    fn drop_statements_drop_every_star_table_but_not_the_database() {
        assert_eq!(
            drop_statements(&shop_pipeline()).unwrap(),
            [
                "DROP TABLE IF EXISTS `local`.`customer_dim`",
                "DROP TABLE IF EXISTS `local`.`product_dim`",
                "DROP TABLE IF EXISTS `local`.`order_fact`",
                "DROP TABLE IF EXISTS `local`.`orderitem_fact`",
            ]
        );
    }
}
