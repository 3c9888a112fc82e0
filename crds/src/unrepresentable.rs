//! The `onUnrepresentable` rule: which policy applies to a column, and what it makes of a value the
//! column's type cannot hold. The type ranges themselves are [`ColumnType::range`]; the sink applies
//! the result (admission only checks the enum).

use crate::column_type::ColumnType;
use crate::pipeline::{ColumnSpec, OnUnrepresentable, StarSchemaSpec};
use crate::star::StarTable;

/// What is written instead of a value the column's type cannot hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Substitute {
    /// The nearest value the type holds.
    Nearest,
    /// NULL (the column is `Nullable`).
    Null,
    /// The type's default (zero, the empty string, 1970-01-01).
    TypeDefault,
    /// Nothing: the event goes to the dead-letter topic.
    DeadLetter,
}

/// The policy of `column` of `table`: its own `onUnrepresentable`, else the schema's. A key column is
/// always `deadLetter`: adjusting a key could make two source rows one.
pub fn column_policy(
    schema: &StarSchemaSpec,
    table: &StarTable<'_>,
    column: &ColumnSpec,
) -> OnUnrepresentable {
    if column.name == table.key {
        return OnUnrepresentable::DeadLetter;
    }
    column
        .on_unrepresentable
        .unwrap_or(schema.on_unrepresentable)
}

/// What `policy` writes in a column of type `ty` for a value outside its range; `has_nearest` says
/// whether the value has a nearest one in the type (NaN has none).
pub fn substitute(policy: OnUnrepresentable, ty: &ColumnType, has_nearest: bool) -> Substitute {
    let empty = if ty.is_nullable() {
        Substitute::Null
    } else {
        Substitute::TypeDefault
    };
    match policy {
        OnUnrepresentable::Clamp if has_nearest => Substitute::Nearest,
        OnUnrepresentable::Clamp | OnUnrepresentable::Null => empty,
        OnUnrepresentable::DeadLetter => Substitute::DeadLetter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::star::star_tables;
    use crate::test_fixtures::shop_pipeline;

    /// Clamp writes the nearest value, or empties the column when there is none; null and
    /// dead-letter ignore the nearest value.
    #[test]
    fn each_policy_picks_its_substitute() {
        use OnUnrepresentable::{Clamp, DeadLetter, Null};
        // (policy, column type, has a nearest value, substitute)
        let cases = [
            (Clamp, "DateTime64(6)", true, Substitute::Nearest),
            (Clamp, "Nullable(Int32)", false, Substitute::Null),
            (Clamp, "Int32", false, Substitute::TypeDefault),
            (Null, "Nullable(Date)", true, Substitute::Null),
            (Null, "Date", true, Substitute::TypeDefault),
            (DeadLetter, "Nullable(Date)", true, Substitute::DeadLetter),
        ];
        for (policy, column, has_nearest, expected) in cases {
            let ty: ColumnType = column.parse().unwrap();
            assert_eq!(
                substitute(policy, &ty, has_nearest),
                expected,
                "{policy:?} on {column} (nearest value: {has_nearest})"
            );
        }
    }

    #[test]
    fn a_column_overrides_the_schema_and_keys_are_never_adjusted() {
        let mut pipeline = shop_pipeline();
        let schema = &mut pipeline.spec.star_schema;
        schema.on_unrepresentable = OnUnrepresentable::Null;
        schema.facts[0].columns[1].on_unrepresentable = Some(OnUnrepresentable::Clamp);
        schema.facts[0].columns[0].on_unrepresentable = Some(OnUnrepresentable::Clamp);
        let schema = &pipeline.spec.star_schema;
        let fact = star_tables(schema)
            .find(|t| t.name == schema.facts[0].name)
            .unwrap();
        let key = fact.key_column().unwrap();
        let policy = |column: &ColumnSpec| column_policy(schema, &fact, column);
        assert_eq!(policy(key), OnUnrepresentable::DeadLetter);
        let overridden = &fact.columns[1];
        assert_ne!(overridden.name, fact.key);
        assert_eq!(policy(overridden), OnUnrepresentable::Clamp);
        assert_eq!(policy(&fact.columns[2]), OnUnrepresentable::Null);
    }
}
