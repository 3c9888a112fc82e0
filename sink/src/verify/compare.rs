//! Comparing one chunk of a star table: the rows expected from Postgres against the rows ClickHouse
//! holds, both as the sink's typed [`Value`]s (copied columns then lookups, in table order). A
//! checksum per side first; when the checksums or counts differ, key by key, naming the columns
//! that differ.

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};

use cdcstar_crds::star_model::TableModel;
use serde::Serialize;

use crate::apply::enrich::key_form;
use crate::route::value::Value;

/// Rows of one chunk by key (in [`key_form`]): the values of the copied columns then the lookups.
pub type Rows = HashMap<Value, Vec<Value>>;

/// Count and order-independent checksum of `rows`.
pub fn checksum(rows: &Rows) -> (usize, u64) {
    let sum = rows.iter().fold(0u64, |sum, (key, values)| {
        // NB: `DefaultHasher::new()` hashes the same way within one build of the verifier, which
        // is all the comparison needs: both sides are hashed by the same process.
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        values.hash(&mut hasher);
        sum.wrapping_add(hasher.finish())
    });
    (rows.len(), sum)
}

/// How one key differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Difference {
    /// In Postgres, not live in ClickHouse.
    MissingInClickHouse,
    /// Live in ClickHouse, not in Postgres.
    ExtraInClickHouse,
    /// In both, with different values in these columns.
    Values {
        /// The columns (copied or lookup) whose values differ.
        columns: Vec<String>,
    },
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Difference::MissingInClickHouse => write!(f, "missing in ClickHouse"),
            Difference::ExtraInClickHouse => write!(f, "extra in ClickHouse"),
            Difference::Values { columns } => {
                write!(f, "different values in {}", columns.join(", "))
            }
        }
    }
}

/// The difference of one key between `expected` and `actual` (`None`: absent), `None` when equal.
pub fn difference(
    table: &TableModel,
    expected: Option<&Vec<Value>>,
    actual: Option<&Vec<Value>>,
) -> Option<Difference> {
    match (expected, actual) {
        (None, None) => None,
        (Some(_), None) => Some(Difference::MissingInClickHouse),
        (None, Some(_)) => Some(Difference::ExtraInClickHouse),
        (Some(expected), Some(actual)) => {
            let columns: Vec<String> = (0..table.width())
                .filter(|&i| expected.get(i) != actual.get(i))
                .map(|i| column_name(table, i).to_owned())
                .collect();
            (!columns.is_empty()).then_some(Difference::Values { columns })
        }
    }
}

/// Name of value `index` of a row: a copied column, then a lookup.
pub fn column_name(table: &TableModel, index: usize) -> &str {
    if index < table.columns.len() {
        &table.columns[index].name
    } else {
        &table.lookups[index - table.columns.len()].name
    }
}

/// Every key of the chunk that differs, with how; empty when the counts and checksums agree.
pub fn differing_keys(
    table: &TableModel,
    expected: &Rows,
    actual: &Rows,
) -> Vec<(Value, Difference)> {
    if checksum(expected) == checksum(actual) {
        return Vec::new();
    }
    let keys: BTreeSet<KeyOrder> = expected
        .keys()
        .chain(actual.keys())
        .map(|k| KeyOrder(k.clone()))
        .collect();
    keys.into_iter()
        .filter_map(|KeyOrder(key)| {
            difference(table, expected.get(&key), actual.get(&key)).map(|d| (key, d))
        })
        .collect()
}

/// Keys in a stable order for reports (integers numerically, the rest by their text).
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyOrder(Value);

impl Ord for KeyOrder {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (&self.0, &other.0) {
            (Value::UInt(a), Value::UInt(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (a, b) => key_text(a).cmp(&key_text(b)),
        }
    }
}

impl PartialOrd for KeyOrder {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A key as reports print it.
pub fn key_text(key: &Value) -> String {
    match key {
        Value::UInt(v) => v.to_string(),
        Value::Int(v) => v.to_string(),
        Value::String(s) => s.clone(),
        Value::Uuid(u) => uuid::Uuid::from_u128(*u).to_string(),
        other => format!("{other:?}"),
    }
}

/// Rows keyed by [`key_form`] of the value at `key_index`.
pub fn by_key(rows: Vec<Vec<Value>>, key_index: usize) -> Rows {
    rows.into_iter()
        .map(|row| (key_form(&row[key_index]), row))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::shop;
    use cdcstar_crds::star_model::StarModel;

    fn customer_dim() -> TableModel {
        let model = StarModel::for_pipeline(&shop().spec).unwrap();
        model.tables[model.table_id("customer_dim").unwrap()].clone()
    }

    fn row(id: u64, name: &str) -> Vec<Value> {
        vec![
            Value::UInt(id),
            Value::String(format!("{name}@x")),
            Value::String(name.into()),
            Value::String("FR".into()),
            Value::String("Paris".into()),
            Value::Ticks(0),
        ]
    }

    #[test]
    fn equal_chunks_have_equal_checksums_in_any_order() {
        let a = by_key(vec![row(1, "ann"), row(2, "bob")], 0);
        let b = by_key(vec![row(2, "bob"), row(1, "ann")], 0);
        assert_eq!(checksum(&a), checksum(&b));
        assert!(differing_keys(&customer_dim(), &a, &b).is_empty());
    }

    #[test]
    fn each_kind_of_difference_is_named_with_its_key_and_columns() {
        let table = customer_dim();
        let expected = by_key(vec![row(1, "ann"), row(2, "bob"), row(3, "cy")], 0);
        let mut changed = row(2, "bob");
        changed[2] = Value::String("bobby".into());
        let actual = by_key(vec![row(1, "ann"), changed, row(4, "dee")], 0);
        assert_ne!(checksum(&expected), checksum(&actual));
        let found = differing_keys(&table, &expected, &actual);
        assert_eq!(
            found,
            vec![
                (
                    Value::UInt(2),
                    Difference::Values {
                        columns: vec!["name".into()]
                    }
                ),
                (Value::UInt(3), Difference::MissingInClickHouse),
                (Value::UInt(4), Difference::ExtraInClickHouse),
            ]
        );
    }

    #[test]
    fn keys_of_either_integer_type_compare_as_one() {
        let mut signed = row(7, "g");
        signed[0] = Value::Int(7);
        let a = by_key(vec![signed], 0);
        let b = by_key(vec![row(7, "g")], 0);
        assert!(a.contains_key(&Value::UInt(7)));
        // The key column's own value still differs in kind; the table's values decide.
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    }
}
