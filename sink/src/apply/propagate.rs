//! Propagation inside ClickHouse: the SQL that rewrites the fact rows whose looked-up values a batch
//! changed, without the sink reading a single fact row.
//!
//! For one fact and one lookup node whose table has changed keys `K`, one `INSERT ... SELECT` reads
//! the live (`FINAL`) fact rows that reach a key of `K` through that node, joins the current rows of
//! the referenced tables (the node, the nodes on the way to it and the nodes below it, each
//! restricted to the rows those facts can reach), and writes the rows whose lookups through the node
//! differ, with the lookups recomputed and `lsn + 1`. So a replay whose facts are already current writes
//! nothing, and the rows the statement wrote (ClickHouse's summary of it,
//! [`crate::store::summary`]) are the rows that moved: one statement, no count before it.
//!
//! What the statement keeps exact:
//! - the versions of [`crate::apply::versioning`]: a propagation rewrite keeps `source_lsn` and takes
//!   the stored `lsn + 1`, computed in SQL from the row it rewrites;
//! - the enrichment rules of [`crate::apply::enrich`]: a referenced row that is missing or deleted
//!   yields the column type's default (a `LEFT JOIN` with `join_use_nulls = 0` fills defaults), and
//!   a chained lookup goes through the live intermediate row;
//! - memory: the sink holds the changed keys of its batch and nothing per fact.
//!
//! Over 400 lines: the SQL renderer is ~290 lines; the rest are tests of the statements it renders.

use std::collections::HashSet;

use cdcstar_crds::clickhouse_ddl::quote_ident;
use cdcstar_crds::star::{Bookkeeping, IS_DELETED_COLUMN};
use cdcstar_crds::star_model::{ColumnRole, StarModel, TableModel};

use crate::route::value::Value;
use crate::store::in_list;

/// Alias of the fact table in the statement.
const FACT: &str = "f";

/// The rewrite of the rows of `fact` that reach a changed key through one of its lookup nodes.
#[derive(Debug, Clone, Copy)]
pub struct Propagation<'a> {
    pub plan: &'a StarModel,
    pub fact: &'a TableModel,
    /// Each lookup node whose table changed, with the keys that changed (one statement rewrites the
    /// rows reaching any of them).
    pub changes: &'a [(usize, &'a HashSet<Value>)],
    /// Recompute every lookup of the rows, not only those through the changed nodes: with several
    /// replicas, two propagations of one row through different nodes can read the same version and
    /// the one written last would otherwise bring back what the other changed.
    pub all_lookups: bool,
}

impl Propagation<'_> {
    /// The rewrite.
    pub fn insert_sql(&self) -> String {
        let recomputed = self.recomputed_lookups();
        let values: Vec<String> = self
            .fact
            .schema_columns()
            .into_iter()
            .map(|column| {
                let stored = format!("{FACT}.{}", quote_ident(&column.name));
                match column.role {
                    ColumnRole::Source(_) => stored,
                    ColumnRole::Lookup(index) => match recomputed.iter().find(|(l, _)| *l == index)
                    {
                        Some((_, value)) => value.clone(),
                        None => stored,
                    },
                    ColumnRole::Bookkeeping(Bookkeeping::Lsn) => format!("{stored} + 1"),
                    ColumnRole::Bookkeeping(Bookkeeping::SourceLsn | Bookkeeping::IsDeleted) => {
                        stored
                    }
                }
            })
            .collect();
        let columns: Vec<String> = self
            .fact
            .schema_columns()
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect();
        format!(
            "INSERT INTO {} ({}) SELECT {} {}",
            quote_ident(&self.fact.name),
            columns.join(", "),
            values.join(", "),
            self.source()
        )
    }

    /// `FROM` the live fact rows reaching the changed keys, joined to the referenced rows, `WHERE` a
    /// lookup through the node differs from what is stored.
    fn source(&self) -> String {
        let mut sql = format!("FROM {} AS {FACT} FINAL", quote_ident(&self.fact.name));
        for index in self.joined_nodes() {
            let node = &self.fact.nodes[index];
            let on = match node.parent {
                None => format!(
                    "{FACT}.{}",
                    quote_ident(&self.fact.columns[node.foreign_key].name)
                ),
                Some(parent) => format!("{}.{}", alias(parent), fetched_alias(node.foreign_key)),
            };
            sql.push_str(&format!(
                " LEFT JOIN ({}) AS {} ON {on} = {}.__k",
                self.node_rows(index),
                alias(index),
                alias(index)
            ));
        }
        let differs: Vec<String> = self
            .recomputed_lookups()
            .into_iter()
            .map(|(index, value)| {
                let lookup = &self.fact.lookups[index];
                let stored = format!("{FACT}.{}", quote_ident(&lookup.name));
                if lookup.ty.is_nullable() {
                    format!("(({stored} IS NULL) != ({value} IS NULL) OR {stored} != {value})")
                } else {
                    format!("{stored} != {value}")
                }
            })
            .collect();
        // The fact's keys that ever reached a changed key, over every stored version: a superset of
        // the live affected rows that lets ClickHouse read (and merge for `FINAL`) only the granules
        // of those keys, instead of the whole fact table, when a batch changed a few dimension rows.
        let key = &self.fact.key_column().name;
        let candidates = Versions::Any.select(&self.fact.name, key, &self.affected(Versions::Any));
        sql.push_str(&format!(
            " WHERE {FACT}.{} = 0 AND {FACT}.{} IN ({candidates}) AND {} AND ({}) \
             SETTINGS join_use_nulls = 0",
            quote_ident(IS_DELETED_COLUMN),
            quote_ident(key),
            self.affected(Versions::Live),
            differs.join(" OR ")
        ));
        sql
    }

    /// The lookups whose value goes through the node (index in `lookups`, SQL of the new value).
    fn recomputed_lookups(&self) -> Vec<(usize, String)> {
        self.fact
            .lookups
            .iter()
            .enumerate()
            .filter(|(_, lookup)| self.recomputes(lookup.node))
            .map(|(index, lookup)| {
                (
                    index,
                    format!("{}.{}", alias(lookup.node), fetched_alias(lookup.fetch)),
                )
            })
            .collect()
    }

    /// The nodes joined: the paths from the fact to the changed nodes and every node recomputed;
    /// parents come before their children (a node is compiled after its parent).
    fn joined_nodes(&self) -> Vec<usize> {
        (0..self.fact.nodes.len())
            .filter(|&index| {
                self.recomputes(index)
                    || self
                        .changes
                        .iter()
                        .any(|&(node, _)| self.above(node, index))
            })
            .collect()
    }

    /// Whether the lookups of node `index` are recomputed: the changed nodes and the nodes reached
    /// through them, or every node.
    fn recomputes(&self, index: usize) -> bool {
        self.all_lookups
            || self
                .changes
                .iter()
                .any(|&(node, _)| self.below(node, index))
    }

    /// Whether `index` is `node` or a node reached through it.
    fn below(&self, node: usize, mut index: usize) -> bool {
        loop {
            if index == node {
                return true;
            }
            match self.fact.nodes[index].parent {
                Some(parent) => index = parent,
                None => return false,
            }
        }
    }

    /// Whether `index` is on the path from the fact to `node` (`node` excluded).
    fn above(&self, node: usize, index: usize) -> bool {
        let mut current = self.fact.nodes[node].parent;
        while let Some(step) = current {
            if step == index {
                return true;
            }
            current = self.fact.nodes[step].parent;
        }
        false
    }

    /// The condition on the fact's rows that reach any changed key, through the intermediate rows'
    /// `versions`.
    fn affected(&self, versions: Versions) -> String {
        let conditions: Vec<String> = self
            .changes
            .iter()
            .map(|&(node, keys)| self.reaching(node, keys, None, versions))
            .collect();
        // NB: parenthesised, whatever it is followed or preceded by.
        match conditions.as_slice() {
            [one] => format!("({one})"),
            _ => format!("(({}))", conditions.join(") OR (")),
        }
    }

    /// The live rows of node `index`'s table that the affected facts can reach: its key and fetched
    /// columns (cast to the lookup types), `__k` and `__f<i>`.
    fn node_rows(&self, index: usize) -> String {
        let node = &self.fact.nodes[index];
        let table = &self.plan.tables[node.table];
        let mut columns = vec![format!("{} AS __k", quote_ident(&table.key_column().name))];
        for (i, fetched) in node.fetched.iter().enumerate() {
            let column = quote_ident(&table.columns[fetched.column].name);
            let value = match &fetched.cast {
                Some(ty) => format!("CAST({column} AS {ty})"),
                None => column,
            };
            columns.push(format!("{value} AS {}", fetched_alias(i)));
        }
        format!(
            "SELECT {} FROM {} FINAL WHERE {} = 0 AND {}",
            columns.join(", "),
            quote_ident(&table.name),
            quote_ident(IS_DELETED_COLUMN),
            self.reachable(index)
        )
    }

    /// The condition on the rows of `level`'s table (the fact's for `None`; `level` on the path to
    /// `node`) that reach one of `keys` through `node`: `fk IN (keys)` one step above it, nested
    /// subqueries over the intermediate rows' `versions` further up. A changed key is reached whether
    /// its row is live or deleted (a deletion rewrites its facts with defaults).
    fn reaching(
        &self,
        node: usize,
        keys: &HashSet<Value>,
        level: Option<usize>,
        versions: Versions,
    ) -> String {
        let mut current = node;
        let mut condition = in_list(self.foreign_key_column(current), keys);
        while self.fact.nodes[current].parent != level {
            let parent = self.fact.nodes[current]
                .parent
                .expect("`level` is on the path to the node");
            let table = &self.plan.tables[self.fact.nodes[parent].table];
            condition = format!(
                "{} IN ({})",
                quote_ident(self.foreign_key_column(parent)),
                versions.select(&table.name, &table.key_column().name, &condition),
            );
            current = parent;
        }
        condition
    }

    /// The column holding node `index`'s foreign key: a fact column for a first step, a column of
    /// the parent node's table otherwise.
    fn foreign_key_column(&self, index: usize) -> &str {
        let node = &self.fact.nodes[index];
        match node.parent {
            None => &self.fact.columns[node.foreign_key].name,
            Some(parent) => {
                let parent = &self.fact.nodes[parent];
                &self.plan.tables[parent.table].columns[parent.fetched[node.foreign_key].column]
                    .name
            }
        }
    }

    /// The condition on node `index`'s table selecting a superset of the rows the affected facts
    /// can reach, through [`Versions::Any`]. With one changed node, the changed keys themselves and
    /// the rows on the way to them; with several, the rows the affected facts point to.
    fn reachable(&self, index: usize) -> String {
        if let &[(node, keys)] = self.changes {
            if index == node {
                let table = &self.plan.tables[self.fact.nodes[index].table];
                return in_list(&table.key_column().name, keys);
            }
            if self.above(node, index) {
                return self.reaching(node, keys, Some(index), Versions::Any);
            }
        }
        let node = &self.fact.nodes[index];
        let table = &self.plan.tables[node.table];
        let Some(parent_index) = node.parent else {
            // A first step: the keys the affected facts hold.
            return format!(
                "{} IN ({})",
                quote_ident(&table.key_column().name),
                Versions::Any.select(
                    &self.fact.name,
                    self.foreign_key_column(index),
                    &self.affected(Versions::Any)
                ),
            );
        };
        // Further down: the keys its parent's reachable rows point to.
        let parent_table = &self.plan.tables[self.fact.nodes[parent_index].table];
        format!(
            "{} IN ({})",
            quote_ident(&table.key_column().name),
            Versions::Any.select(
                &parent_table.name,
                self.foreign_key_column(index),
                &self.reachable(parent_index)
            ),
        )
    }
}

/// Which stored rows a subquery over an intermediate table reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Versions {
    /// The live rows (`FINAL`, not deleted): which facts a change affects is decided on these.
    Live,
    /// Every stored version, deleted ones included: a superset of the live rows (a live row is one
    /// of its versions), enough to restrict the rows a join's right side holds, and without the
    /// merge of the whole table that `FINAL` costs. For the example's items, whose lookups go
    /// through orders to customers, a propagation statement took ~95 ms instead of ~170-200 ms on
    /// `make bench-sink` (1 000 000 events).
    Any,
}

impl Versions {
    /// `SELECT column FROM table ... WHERE condition` over these versions.
    fn select(self, table: &str, column: &str, condition: &str) -> String {
        match self {
            Versions::Live => format!(
                "SELECT {} FROM {} FINAL WHERE {condition} AND {} = 0",
                quote_ident(column),
                quote_ident(table),
                quote_ident(IS_DELETED_COLUMN)
            ),
            Versions::Any => format!(
                "SELECT {} FROM {} WHERE {condition}",
                quote_ident(column),
                quote_ident(table)
            ),
        }
    }
}

fn alias(node: usize) -> String {
    format!("j{node}")
}

fn fetched_alias(fetch: usize) -> String {
    format!("__f{fetch}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::shop;

    /// The rewrite of `fact`'s rows after key `key` of `changed` changed.
    fn rewrite(fact: &str, changed: &str, key: u64, all_lookups: bool) -> String {
        let plan = StarModel::for_pipeline(&shop().spec).unwrap();
        let fact = &plan.tables[plan.table_id(fact).unwrap()];
        let keys = HashSet::from([Value::UInt(key)]);
        let changes = [(node(&fact.name, changed), &keys)];
        let propagation = Propagation {
            plan: &plan,
            fact,
            changes: &changes,
            all_lookups,
        };
        propagation.insert_sql()
    }

    /// Fails showing the whole statement when `sql` does not contain `part`.
    fn assert_has(sql: &str, part: &str) {
        assert!(sql.contains(part), "no `{part}` in:\n{sql}");
    }

    /// The index of the lookup node of `fact` that reads `table`.
    fn node(fact: &str, table: &str) -> usize {
        let plan = StarModel::for_pipeline(&shop().spec).unwrap();
        plan.tables[plan.table_id(fact).unwrap()]
            .nodes
            .iter()
            .position(|n| plan.tables[n.table].name == table)
            .unwrap()
    }

    #[test]
    fn a_dimension_change_rewrites_its_facts_with_the_joined_values() {
        let insert_sql = rewrite("order_fact", "customer_dim", 7, false);
        let from = "FROM `order_fact` AS f FINAL LEFT JOIN (SELECT `customer_id` AS __k, \
            CAST(`name` AS String) AS __f0, CAST(`email` AS String) AS __f1 FROM `customer_dim` \
            FINAL WHERE `is_deleted` = 0 AND `customer_id` IN (7)) AS j0 ON f.`customer_id` = \
            j0.__k WHERE f.`is_deleted` = 0 AND f.`order_id` IN (SELECT `order_id` FROM \
            `order_fact` WHERE (`customer_id` IN (7))) AND (`customer_id` IN (7)) AND \
            (f.`customer_name` != j0.__f0 OR f.`customer_email` != j0.__f1) \
            SETTINGS join_use_nulls = 0";
        assert_eq!(
            insert_sql,
            format!(
                "INSERT INTO `order_fact` (`order_id`, `customer_id`, `status`, `total`, \
                 `order_date`, `customer_name`, `customer_email`, `source_lsn`, `lsn`, \
                 `is_deleted`) SELECT f.`order_id`, f.`customer_id`, f.`status`, f.`total`, \
                 f.`order_date`, j0.__f0, j0.__f1, f.`source_lsn`, f.`lsn` + 1, f.`is_deleted` \
                 {from}"
            )
        );
    }

    #[test]
    fn a_chained_lookup_joins_the_intermediate_rows_that_reach_the_keys() {
        let customer = node("orderitem_fact", "customer_dim");
        let order = node("orderitem_fact", "order_fact");
        let sql = rewrite("orderitem_fact", "customer_dim", 7, false);
        // The order rows joined are those whose customer changed; the customer columns come from
        // the customer's row, the order's own lookups (status, date) stay as stored.
        assert_has(
            &sql,
            &format!(
                "FROM `order_fact` FINAL WHERE `is_deleted` = 0 AND `customer_id` IN (7)) AS j{order} \
                 ON f.`order_id` = j{order}.__k"
            ),
        );
        assert_has(&sql, &format!("ON j{order}.__f2 = j{customer}.__k"));
        assert_has(&sql, "f.`order_status`, f.`order_date`");
        assert_has(
            &sql,
            "WHERE f.`is_deleted` = 0 AND f.`orderitem_id` IN (SELECT `orderitem_id` FROM \
                 `orderitem_fact` WHERE (`order_id` IN (SELECT `order_id` FROM `order_fact` WHERE \
                 `customer_id` IN (7)))) AND (`order_id` IN (SELECT `order_id` FROM \
                 `order_fact` FINAL WHERE `customer_id` IN (7) AND `is_deleted` = 0))",
        );
    }

    #[test]
    fn a_change_of_an_intermediate_fact_recomputes_the_lookups_below_it() {
        let customer = node("orderitem_fact", "customer_dim");
        let sql = rewrite("orderitem_fact", "order_fact", 3, false);
        // The customer rows joined are those the changed orders point to.
        assert_has(
            &sql,
            &format!(
                "FROM `customer_dim` FINAL WHERE `is_deleted` = 0 AND `customer_id` IN (SELECT \
                 `customer_id` FROM `order_fact` WHERE `order_id` IN (3))) AS j{customer}"
            ),
        );
        assert!(!sql.contains("product_dim"), "{sql}");
    }

    #[test]
    fn recomputing_every_lookup_joins_the_other_steps_for_the_affected_facts_only() {
        let product = node("orderitem_fact", "product_dim");
        let sql = rewrite("orderitem_fact", "customer_dim", 7, true);
        assert_has(
            &sql,
            &format!(
                "FROM `product_dim` FINAL WHERE `is_deleted` = 0 AND `product_id` IN (SELECT \
                 `product_id` FROM `orderitem_fact` WHERE (`order_id` IN (SELECT `order_id` FROM \
                 `order_fact` WHERE `customer_id` IN (7))))) AS j{product} ON f.`product_id` = \
                 j{product}.__k"
            ),
        );
        assert!(!sql.contains("f.`order_status`,"), "{sql}");
        assert_has(&sql, &format!("f.`product_name` != j{product}.__f0"));
    }

    #[test]
    fn several_changed_nodes_of_one_fact_are_one_statement_over_the_facts_reaching_any() {
        let plan = StarModel::for_pipeline(&shop().spec).unwrap();
        let fact = &plan.tables[plan.table_id("orderitem_fact").unwrap()];
        let products = HashSet::from([Value::UInt(5)]);
        let customers = HashSet::from([Value::UInt(7)]);
        let product = node("orderitem_fact", "product_dim");
        let changes = [
            (product, &products),
            (node("orderitem_fact", "customer_dim"), &customers),
        ];
        let sql = Propagation {
            plan: &plan,
            fact,
            changes: &changes,
            all_lookups: false,
        }
        .insert_sql();
        // Which facts are affected is decided on the live orders.
        let affected = "((`product_id` IN (5)) OR (`order_id` IN (SELECT `order_id` FROM \
                        `order_fact` FINAL WHERE `customer_id` IN (7) AND `is_deleted` = 0)))";
        // A join's right side, and the fact keys read, are restricted through every stored version
        // (a superset, no merge).
        let reaching_any = "((`product_id` IN (5)) OR (`order_id` IN (SELECT `order_id` FROM \
                            `order_fact` WHERE `customer_id` IN (7))))";
        assert_has(
            &sql,
            &format!(
                "WHERE f.`is_deleted` = 0 AND f.`orderitem_id` IN (SELECT `orderitem_id` FROM \
                 `orderitem_fact` WHERE {reaching_any}) AND {affected} AND"
            ),
        );
        // Each joined node is restricted to what the affected facts point to.
        assert_has(
            &sql,
            &format!(
                "FROM `product_dim` FINAL WHERE `is_deleted` = 0 AND `product_id` IN (SELECT \
                 `product_id` FROM `orderitem_fact` WHERE {reaching_any})) AS j{product}"
            ),
        );
        // The order's own lookups are not recomputed: the order did not change.
        assert_has(&sql, "f.`order_status`, f.`order_date`");
    }
}
