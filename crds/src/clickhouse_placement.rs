//! Where a pipeline's ClickHouse tables live, and the statements that differ by it: one server (the
//! default, and ClickHouse Cloud, which replicates every table itself), or a self-hosted cluster
//! (`spec.clickhouse.cluster`).
//!
//! On a cluster every statement runs `ON CLUSTER`, and a table `t` becomes two:
//! - `t_local` on every replica, `Replicated<Family>('<replicaPath>', '<replicaName>', args)`, holding
//!   one shard's rows;
//! - `t`, `Distributed(cluster, database, t_local, <sharding key>)`, through which the sink and
//!   analysts read and write. The sharding key hashes the table's key (a star table) or its identity
//!   (a status table), so every version of a row lands on one shard: `ReplacingMergeTree` and
//!   `SummingMergeTree` merge only within a shard, and `FINAL` on a `Distributed` table is applied on
//!   each shard, so it sees every version of a key only if they meet there.
//!
//! The sink reads and writes the `Distributed` tables with [`Placement::sink_settings`]: inserts wait
//! until every shard has its rows (so a read right after sees them), and the `IN`/`JOIN` subqueries of
//! lookups and propagation over other `Distributed` tables run once on the initiator (`GLOBAL`).

use crate::clickhouse_ddl::{quote_ident, quote_string};
use crate::pipeline::{CdcPipeline, ClusterSpec};

/// One server, or a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    cluster: Option<ClusterSpec>,
}

/// A `MergeTree`-family engine, as written for one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeTree<'a> {
    /// `ReplacingMergeTree`, `SummingMergeTree`, ...
    pub family: &'a str,
    /// The engine's arguments, quoted (`` `lsn`, `is_deleted` ``).
    pub args: &'a str,
    /// The `ORDER BY` expression list, quoted, without parentheses.
    pub order_by: &'a str,
    /// `SETTINGS` of the table, if any.
    pub settings: Option<&'a str>,
    /// What a cluster shards rows by (an expression over the `ORDER BY` columns).
    pub sharding_key: &'a str,
}

impl Placement {
    /// Where `pipeline`'s tables live.
    pub fn of(pipeline: &CdcPipeline) -> Self {
        Placement {
            cluster: pipeline.spec.clickhouse.cluster.clone(),
        }
    }

    /// The cluster, if any.
    pub fn cluster(&self) -> Option<&ClusterSpec> {
        self.cluster.as_ref()
    }

    fn on_cluster(&self) -> String {
        match &self.cluster {
            Some(cluster) => format!(" ON CLUSTER {}", quote_ident(&cluster.name)),
            None => String::new(),
        }
    }

    /// `CREATE DATABASE IF NOT EXISTS`.
    pub fn create_database(&self, database: &str) -> String {
        format!(
            "CREATE DATABASE IF NOT EXISTS {}{}",
            quote_ident(database),
            self.on_cluster()
        )
    }

    /// `CREATE TABLE IF NOT EXISTS` of table `name` (its `columns` as the body of the column list):
    /// one statement on a server, the replicated table then the distributed one on a cluster.
    pub fn create_table(
        &self,
        database: &str,
        name: &str,
        columns: &str,
        engine: &MergeTree,
    ) -> Vec<String> {
        let settings = engine
            .settings
            .map(|s| format!(" SETTINGS {s}"))
            .unwrap_or_default();
        let Some(cluster) = &self.cluster else {
            return vec![format!(
                "CREATE TABLE IF NOT EXISTS {} (\n{columns}\n) ENGINE = {}({}) ORDER BY ({}){settings}",
                qualified(database, name),
                engine.family,
                engine.args,
                engine.order_by
            )];
        };
        let local = local_name(name);
        let args = if engine.args.is_empty() {
            String::new()
        } else {
            format!(", {}", engine.args)
        };
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {}{} (\n{columns}\n) ENGINE = Replicated{}({}, {}{args}) ORDER BY ({}){settings}",
                qualified(database, &local),
                self.on_cluster(),
                engine.family,
                quote_string(&cluster.replica_path),
                quote_string(&cluster.replica_name),
                engine.order_by
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {}{} AS {} ENGINE = Distributed({}, {}, {}, {})",
                qualified(database, name),
                self.on_cluster(),
                qualified(database, &local),
                quote_ident(&cluster.name),
                quote_ident(database),
                quote_ident(&local),
                engine.sharding_key
            ),
        ]
    }

    /// `CREATE VIEW IF NOT EXISTS` (`CREATE OR REPLACE VIEW` when `replace`); on a cluster, on every
    /// replica, reading the `Distributed` tables.
    pub fn create_view(&self, database: &str, name: &str, select: &str, replace: bool) -> String {
        let create = if replace {
            "CREATE OR REPLACE VIEW"
        } else {
            "CREATE VIEW IF NOT EXISTS"
        };
        format!(
            "{create} {}{} AS {select}",
            qualified(database, name),
            self.on_cluster()
        )
    }

    /// `ALTER TABLE ... ADD COLUMN IF NOT EXISTS`; on a cluster, the replicated table first, then the
    /// distributed one.
    pub fn add_column(&self, database: &str, table: &str, column: &str, ty: &str) -> Vec<String> {
        self.physical_names(table)
            .into_iter()
            .map(|name| {
                format!(
                    "ALTER TABLE {}{} ADD COLUMN IF NOT EXISTS {} {ty}",
                    qualified(database, &name),
                    self.on_cluster(),
                    quote_ident(column)
                )
            })
            .collect()
    }

    /// `DROP TABLE IF EXISTS`; on a cluster, the distributed table first, then the replicated one
    /// (`SYNC`, so a table created again right after finds its Keeper path free).
    pub fn drop_table(&self, database: &str, table: &str) -> Vec<String> {
        let sync = if self.cluster.is_some() { " SYNC" } else { "" };
        let mut names = self.physical_names(table);
        names.reverse();
        names
            .into_iter()
            .map(|name| {
                format!(
                    "DROP TABLE IF EXISTS {}{}{sync}",
                    qualified(database, &name),
                    self.on_cluster()
                )
            })
            .collect()
    }

    /// `DELETE FROM` rows of `table` matching `condition`; on a cluster from the replicated table
    /// on every replica (a `Distributed` table takes no `DELETE`).
    pub fn delete_rows(&self, database: &str, table: &str, condition: &str) -> String {
        let name = match self.cluster {
            Some(_) => local_name(table),
            None => table.to_owned(),
        };
        format!(
            "DELETE FROM {}{} WHERE {condition}",
            qualified(database, &name),
            self.on_cluster()
        )
    }

    /// The tables behind `table`, in creation order.
    fn physical_names(&self, table: &str) -> Vec<String> {
        match self.cluster {
            Some(_) => vec![local_name(table), table.to_owned()],
            None => vec![table.to_owned()],
        }
    }

    /// The columns of every table of a database, `(table, name, column_type)` in table order; bind the
    /// database as the one `?`. On a cluster, read from every replica: a column counts only where
    /// every replica has it with the same type (elsewhere it is missing, and `ADD COLUMN IF NOT
    /// EXISTS` brings the replicas that lack it in line).
    pub fn columns_query(&self) -> String {
        match &self.cluster {
            None => "SELECT table, name, type AS column_type FROM system.columns \
                     WHERE database = ? ORDER BY table, position"
                .to_owned(),
            Some(cluster) => {
                let name = quote_string(&cluster.name);
                format!(
                    "SELECT table, name, type AS column_type FROM clusterAllReplicas({name}, system.columns) \
                     WHERE database = ? GROUP BY table, name, type, position \
                     HAVING count() = (SELECT count() FROM system.clusters WHERE cluster = {name}) \
                     ORDER BY table, position"
                )
            }
        }
    }

    /// Query settings the sink's statements need here (none on one server).
    pub fn sink_settings(&self) -> &'static [(&'static str, &'static str)] {
        match self.cluster {
            None => &[],
            Some(_) => &[
                ("insert_distributed_sync", "1"),
                ("distributed_product_mode", "global"),
            ],
        }
    }
}

/// The replicated table behind the distributed table `table` on a cluster.
pub fn local_name(table: &str) -> String {
    format!("{table}_local")
}

fn qualified(database: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(database), quote_ident(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Placement {
        Placement {
            cluster: Some(ClusterSpec {
                name: "analytics".into(),
                replica_path: "/clickhouse/tables/{shard}/{database}/{table}".into(),
                replica_name: "{replica}".into(),
            }),
        }
    }

    const ENGINE: MergeTree = MergeTree {
        family: "ReplacingMergeTree",
        args: "`lsn`, `is_deleted`",
        order_by: "`id`",
        settings: None,
        sharding_key: "cityHash64(`id`)",
    };

    #[test]
    fn one_server_keeps_one_table_per_name() {
        let single = Placement::default();
        assert_eq!(
            single.create_table("db", "t", "    `id` UInt64", &ENGINE),
            [
                "CREATE TABLE IF NOT EXISTS `db`.`t` (\n    `id` UInt64\n) ENGINE = \
              ReplacingMergeTree(`lsn`, `is_deleted`) ORDER BY (`id`)"
            ]
        );
        assert_eq!(
            single.drop_table("db", "t"),
            ["DROP TABLE IF EXISTS `db`.`t`"]
        );
        assert!(single.sink_settings().is_empty());
    }

    #[test]
    fn a_cluster_replicates_each_shard_and_distributes_by_the_key() {
        let statements = cluster().create_table("db", "t", "    `id` UInt64", &ENGINE);
        assert_eq!(
            statements,
            [
                "CREATE TABLE IF NOT EXISTS `db`.`t_local` ON CLUSTER `analytics` (\n    `id` UInt64\n) \
                 ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', \
                 '{replica}', `lsn`, `is_deleted`) ORDER BY (`id`)",
                "CREATE TABLE IF NOT EXISTS `db`.`t` ON CLUSTER `analytics` AS `db`.`t_local` \
                 ENGINE = Distributed(`analytics`, `db`, `t_local`, cityHash64(`id`))",
            ]
        );
        assert_eq!(
            cluster().add_column("db", "t", "c", "String"),
            [
                "ALTER TABLE `db`.`t_local` ON CLUSTER `analytics` ADD COLUMN IF NOT EXISTS `c` String",
                "ALTER TABLE `db`.`t` ON CLUSTER `analytics` ADD COLUMN IF NOT EXISTS `c` String",
            ]
        );
        assert_eq!(
            cluster().drop_table("db", "t"),
            [
                "DROP TABLE IF EXISTS `db`.`t` ON CLUSTER `analytics` SYNC",
                "DROP TABLE IF EXISTS `db`.`t_local` ON CLUSTER `analytics` SYNC",
            ]
        );
        assert!(
            cluster()
                .columns_query()
                .contains("clusterAllReplicas('analytics', system.columns)")
        );
        assert_eq!(
            cluster().delete_rows("db", "t", "`pipeline` = 'x'"),
            "DELETE FROM `db`.`t_local` ON CLUSTER `analytics` WHERE `pipeline` = 'x'"
        );
        assert!(
            cluster()
                .sink_settings()
                .contains(&("insert_distributed_sync", "1"))
        );
    }
}
