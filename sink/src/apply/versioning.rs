//! The version rules: which row a batch of changes to one key produces, and with which version, given
//! the row ClickHouse already holds. Pure functions, so the rules are tested without any service.
//!
//! - Dimensions (plain copies of a source row): version = the change's LSN (0 for snapshot rows).
//!   Changes to one key are serialised by Postgres row locks, so their change LSNs grow in commit
//!   order and ReplacingMergeTree keeps the newest.
//! - Facts mix their own row with looked-up values, so a fact row is rewritten for reasons other than
//!   its own changes (propagation) and its `lsn` cannot be the source LSN. The fact keeps its own
//!   row's version in `source_lsn`; a change with version `s` is
//!   - skipped when `s < stored.source_lsn` (a stale replay),
//!   - else written with `source_lsn = s` and `lsn = max(s, stored.lsn + 1)`,
//!
//!   and a propagation rewrite keeps `source_lsn` and takes `lsn = stored.lsn + 1`. Every write of a
//!   fact row therefore carries a version above every write it has seen, whatever the LSN order of the
//!   changes that caused it.

use cdcstar_crds::star_model::TableModel;

use crate::route::RowChange;
use crate::route::value::{Value, default_value};
use crate::store::Row;

/// The row a dimension key ends up with after `changes` (in consumption order), or `None` when every
/// change is older than what is stored. `stored` is only needed for unchanged TOASTed columns.
pub fn fold_plain(table: &TableModel, stored: Option<&Row>, changes: &[&RowChange]) -> Option<Row> {
    let mut state: Option<Row> = stored.cloned();
    let mut wrote = false;
    for change in changes {
        if let Some(current) = &state
            && change.version < current.lsn
        {
            continue;
        }
        let values = merge_values(table, state.as_ref(), change);
        state = Some(Row {
            values,
            lsn: change.version,
            deleted: change.deleted,
            source_lsn: change.version,
        });
        wrote = true;
    }
    if wrote { state } else { None }
}

/// The row a fact key ends up with after its own `changes`, or `None` when every change is a stale
/// replay. Lookup columns are left at defaults; the caller enriches the row.
pub fn fold_fact(table: &TableModel, stored: Option<&Row>, changes: &[&RowChange]) -> Option<Row> {
    let mut state: Option<Row> = stored.cloned();
    let mut wrote = false;
    for change in changes {
        let lsn = match &state {
            Some(current) if change.version < current.source_lsn => continue,
            Some(current) => change.version.max(current.lsn + 1),
            None => change.version,
        };
        let values = merge_values(table, state.as_ref(), change);
        state = Some(Row {
            values,
            lsn,
            deleted: change.deleted,
            source_lsn: change.version,
        });
        wrote = true;
    }
    if wrote { state } else { None }
}

/// A fact row rewritten because something it looks up changed: same content, next version.
pub fn propagated(stored: Row) -> Row {
    Row {
        lsn: stored.lsn + 1,
        ..stored
    }
}

/// The change's values, with unchanged TOASTed columns taken from `previous` (the stored row or an
/// earlier change of the batch), and lookup columns at their defaults.
fn merge_values(table: &TableModel, previous: Option<&Row>, change: &RowChange) -> Vec<Value> {
    let mut values = change.values.clone();
    for &index in &change.unchanged {
        if let Some(previous) = previous
            && !previous.deleted
        {
            values[index] = previous.values[index].clone();
        }
    }
    values.extend(table.lookups.iter().map(|l| default_value(&l.ty)));
    values
}

#[cfg(test)]
mod tests {
    use cdcstar_crds::star_model::StarModel;

    use super::*;
    use crate::test_fixtures::shop;

    fn change(table: &TableModel, id: u64, version: u64, name: &str) -> RowChange {
        let mut values: Vec<Value> = table.columns.iter().map(|c| default_value(&c.ty)).collect();
        values[table.key] = Value::UInt(id);
        values[1] = Value::String(name.into());
        RowChange {
            table: 0,
            key: Value::UInt(id),
            values,
            unchanged: Vec::new(),
            deleted: false,
            truncates_table: false,
            version,
        }
    }

    fn shop_table(name: &str) -> TableModel {
        let plan = StarModel::for_pipeline(&shop().spec).unwrap();
        plan.tables[plan.table_id(name).unwrap()].clone()
    }

    fn customer_dim() -> TableModel {
        shop_table("customer_dim")
    }

    /// Folds one change of order 7 at `version` onto `stored`.
    fn fold_order(stored: Option<&Row>, version: u64, name: &str) -> Option<Row> {
        let table = shop_table("order_fact");
        fold_fact(&table, stored, &[&change(&table, 7, version, name)])
    }

    #[test]
    fn dimension_keeps_the_newest_change_of_a_batch() {
        let table = customer_dim();
        let a = change(&table, 1, 20, "new");
        let b = change(&table, 1, 10, "old");
        let row = fold_plain(&table, None, &[&a, &b]).unwrap();
        assert_eq!(row.lsn, 20);
        assert_eq!(row.values[1], Value::String("new".into()));
    }

    #[test]
    fn unchanged_toast_takes_the_stored_value() {
        let table = customer_dim();
        let stored = fold_plain(&table, None, &[&change(&table, 1, 5, "a@x")]).unwrap();
        let mut update = change(&table, 1, 9, "ignored");
        update.unchanged = vec![1];
        let row = fold_plain(&table, Some(&stored), &[&update]).unwrap();
        assert_eq!(row.values[1], Value::String("a@x".into()));
        assert_eq!(row.lsn, 9);
    }

    #[test]
    fn fact_version_stays_above_a_propagated_write() {
        // A propagation left the row at lsn 501 although its own source row is at 100.
        let stored = Row {
            lsn: 501,
            source_lsn: 100,
            ..fold_order(None, 100, "x").unwrap()
        };
        let row = fold_order(Some(&stored), 300, "y").unwrap();
        assert_eq!((row.lsn, row.source_lsn), (502, 300));
        // An update far ahead keeps its own LSN.
        let row = fold_order(Some(&row), 9000, "z").unwrap();
        assert_eq!((row.lsn, row.source_lsn), (9000, 9000));
    }

    #[test]
    fn stale_fact_replay_is_skipped_and_equal_replay_rewrites_higher() {
        let first = fold_order(None, 200, "x").unwrap();
        assert_eq!(first.lsn, 200);
        assert_eq!(fold_order(Some(&first), 100, "old"), None);
        let replay = fold_order(Some(&first), 200, "x").unwrap();
        assert_eq!((replay.lsn, replay.source_lsn), (201, 200));
    }

    #[test]
    fn snapshot_fact_row_beats_nothing_but_loses_to_any_change() {
        let snapshot = fold_order(None, 0, "snap").unwrap();
        assert_eq!(snapshot.lsn, 0);
        let update = fold_order(Some(&snapshot), 50, "u").unwrap();
        assert_eq!(update.lsn, 50);
        assert_eq!(fold_order(Some(&update), 0, "snap"), None);
    }

    #[test]
    fn propagation_bumps_the_version_only() {
        let row = fold_order(None, 200, "x").unwrap();
        let rewritten = propagated(row.clone());
        assert_eq!((rewritten.lsn, rewritten.source_lsn), (201, 200));
        assert_eq!(rewritten.values, row.values);
    }
}
