//! Lookups: filling a fact row's denormalised columns from the current (`FINAL`, not deleted) rows of
//! the tables its foreign keys reference, in one query per node of the fact's lookup tree.
//!
//! The same function serves new fact rows and the re-check after a write, so the two can never disagree
//! on what a lookup means; propagation computes the same lookups in SQL by the same rules
//! ([`crate::apply::propagate`]), and the propagation tests hold the two to the same results.
//! A referenced row that does not exist (yet) yields the column type's default; the fact row is
//! rewritten by propagation when that row arrives.

use std::collections::{HashMap, HashSet};

use cdcstar_crds::ColumnType;
use cdcstar_crds::clickhouse_ddl::quote_ident;
use cdcstar_crds::star_model::{StarModel, TableModel};

use crate::route::value::{Value, default_value};
use crate::store::{Row, Store, StoreError, in_list};

/// Keys compare across integer types: a non-negative `Int` equals the `UInt` of the same number.
pub fn key_form(value: &Value) -> Value {
    match value {
        Value::Int(v) if *v >= 0 => Value::UInt(*v as u64),
        other => other.clone(),
    }
}

/// Fetched rows of one lookup node, by key.
type NodeRows = HashMap<Value, Vec<Value>>;

/// Sets the lookup columns of every non-deleted row of `rows` (facts of `fact`) from the current
/// state of the referenced tables; deleted rows get defaults. Returns how many rows reference a row
/// that is not there (yet): a key that is not NULL whose row, or a row on the way to it, is missing
/// or deleted. Those rows wait, with defaults, for the propagation of the referenced row.
pub async fn enrich(
    store: &Store,
    plan: &StarModel,
    fact: &TableModel,
    rows: &mut [Row],
) -> Result<usize, StoreError> {
    if fact.lookups.is_empty() || rows.is_empty() {
        return Ok(0);
    }
    // NB: a node is compiled after its parent, so a pass over the nodes in order fetches each one
    // once its parent is fetched; the nodes of one depth are fetched concurrently.
    let mut fetched: Vec<NodeRows> = Vec::with_capacity(fact.nodes.len());
    while fetched.len() < fact.nodes.len() {
        let level: Vec<usize> = (fetched.len()..fact.nodes.len())
            .take_while(|&index| fact.nodes[index].parent.is_none_or(|p| p < fetched.len()))
            .collect();
        let queries = level
            .iter()
            .map(|&index| fetch_node(store, plan, fact, index, rows, &fetched));
        fetched.extend(futures::future::try_join_all(queries).await?);
    }
    let width = fact.columns.len();
    let mut unresolved = 0;
    for row in rows.iter_mut() {
        row.values.truncate(width);
        if row.deleted {
            row.values
                .extend(fact.lookups.iter().map(|l| default_value(&l.ty)));
            continue;
        }
        // The fetched record of each node for this row, computed parents first.
        let mut reached: Vec<Option<&Vec<Value>>> = Vec::with_capacity(fact.nodes.len());
        let mut missing = false;
        for (index, node) in fact.nodes.iter().enumerate() {
            let key = match node.parent {
                None => Some(key_form(&row.values[node.foreign_key])),
                Some(parent) => reached[parent].map(|record| key_form(&record[node.foreign_key])),
            };
            let record = key.as_ref().and_then(|k| fetched[index].get(k));
            missing |= record.is_none() && key.is_some_and(|k| k != Value::Null);
            reached.push(record);
        }
        unresolved += usize::from(missing);
        for lookup in &fact.lookups {
            let value = reached[lookup.node]
                .map(|record| record[lookup.fetch].clone())
                .unwrap_or_else(|| default_value(&lookup.ty));
            row.values.push(value);
        }
    }
    Ok(unresolved)
}

/// The current rows of node `index`'s table that `rows` reach through it (its parent's `fetched`
/// rows for a node further down), by key: one query.
async fn fetch_node(
    store: &Store,
    plan: &StarModel,
    fact: &TableModel,
    index: usize,
    rows: &[Row],
    fetched: &[NodeRows],
) -> Result<NodeRows, StoreError> {
    let node = &fact.nodes[index];
    let keys: HashSet<Value> = match node.parent {
        None => rows
            .iter()
            .filter(|r| !r.deleted)
            .map(|r| key_form(&r.values[node.foreign_key]))
            .collect(),
        Some(parent) => fetched[parent]
            .values()
            .map(|record| key_form(&record[node.foreign_key]))
            .collect(),
    };
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let table = &plan.tables[node.table];
    let mut columns = vec![quote_ident(&table.key_column().name)];
    let mut types: Vec<ColumnType> = vec![table.key_column().ty.clone()];
    for f in &node.fetched {
        let column = &table.columns[f.column];
        match &f.cast {
            Some(ty) => {
                columns.push(format!("CAST({} AS {ty})", quote_ident(&column.name)));
                types.push(ty.clone());
            }
            None => {
                columns.push(quote_ident(&column.name));
                types.push(column.ty.clone());
            }
        }
    }
    let sql = format!(
        "SELECT {} FROM {} FINAL WHERE {} AND `is_deleted` = 0",
        columns.join(", "),
        quote_ident(&table.name),
        in_list(&table.key_column().name, keys.iter())
    );
    let records = store.select(&table.name, &sql, &types).await?;
    Ok(records
        .into_iter()
        .map(|mut record| {
            let key = key_form(&record.remove(0));
            (key, record)
        })
        .collect())
}
