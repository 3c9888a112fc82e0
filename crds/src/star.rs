//! The star schema as the sink and the DDL see it: dimensions and facts behind one view, the
//! bookkeeping columns every table gets, and lookups resolved to ClickHouse tables and columns.
//!
//! A lookup names *source* tables and columns (`via: [{foreignKey: orderId, references: order}]`,
//! `column: status`); the sink works on *ClickHouse* tables. [`resolve_lookup`] makes the translation
//! once, with one rule: the table backing a referenced source table is the first dimension, then the
//! first fact, that maps the source column the hop needs (the next foreign key, or the looked-up column).
//!
//! The first hop's foreign key must be a column of the fact itself (not only of another table mirroring
//! the same source): the sink finds the fact rows to rewrite when a referenced row changes by that
//! column (`SELECT ... FROM order_fact WHERE customer_id = ?`).
//!
//! Over 400 lines only with its tests of lookup resolution.

use crate::column_type::ColumnType;
use crate::pipeline::{ColumnSpec, DimensionSpec, FactSpec, LookupHop, LookupSpec, StarSchemaSpec};

/// Row version: the LSN of the change that wrote the row (ReplacingMergeTree's version column).
pub const LSN_COLUMN: &str = "lsn";
/// 1 when the source row was deleted (ReplacingMergeTree's `is_deleted` column).
pub const IS_DELETED_COLUMN: &str = "is_deleted";
/// Facts only: the LSN of the fact's own source row, which `lsn` can outgrow when a lookup change is
/// propagated into the fact.
pub const SOURCE_LSN_COLUMN: &str = "source_lsn";
/// A column every star table gets besides the spec's own: the one list that sets which table has which
/// and in what order they follow the spec's columns and lookups (in the DDL and in every row written).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bookkeeping {
    /// [`SOURCE_LSN_COLUMN`] (facts only).
    SourceLsn,
    /// [`LSN_COLUMN`].
    Lsn,
    /// [`IS_DELETED_COLUMN`].
    IsDeleted,
}

impl Bookkeeping {
    /// Every bookkeeping column, in table order (a fact has them all).
    pub const ALL: [Bookkeeping; 3] = [
        Bookkeeping::SourceLsn,
        Bookkeeping::Lsn,
        Bookkeeping::IsDeleted,
    ];

    /// The bookkeeping columns of a table of `kind`, in table order.
    pub fn of(kind: TableKind) -> &'static [Bookkeeping] {
        match kind {
            TableKind::Dimension => &[Bookkeeping::Lsn, Bookkeeping::IsDeleted],
            TableKind::Fact => &Self::ALL,
        }
    }

    /// Whether the spec may not use `name` for a column, because the DDL adds a column so named.
    pub fn is_reserved(name: &str) -> bool {
        Self::ALL.iter().any(|column| column.name() == name)
    }

    /// The column name.
    pub fn name(self) -> &'static str {
        match self {
            Bookkeeping::SourceLsn => SOURCE_LSN_COLUMN,
            Bookkeeping::Lsn => LSN_COLUMN,
            Bookkeeping::IsDeleted => IS_DELETED_COLUMN,
        }
    }

    /// The column type.
    pub fn column_type(self) -> ColumnType {
        match self {
            Bookkeeping::SourceLsn | Bookkeeping::Lsn => ColumnType::UInt64,
            Bookkeeping::IsDeleted => ColumnType::UInt8,
        }
    }
}

/// Whether a star table is a dimension or a fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// A dimension table.
    Dimension,
    /// A fact table.
    Fact,
}

impl TableKind {
    /// `dimensions` or `facts`: the name of the list in `spec.starSchema`.
    pub fn list_name(self) -> &'static str {
        match self {
            TableKind::Dimension => "dimensions",
            TableKind::Fact => "facts",
        }
    }
}

/// A dimension or a fact, borrowed from the spec.
#[derive(Debug, Clone, Copy)]
pub struct StarTable<'a> {
    pub kind: TableKind,
    /// Position in its list (`spec.starSchema.<list>[index]`).
    pub index: usize,
    /// ClickHouse table name.
    pub name: &'a str,
    /// Captured source table.
    pub source: &'a str,
    /// Key column (ClickHouse name).
    pub key: &'a str,
    /// Columns copied from the source row.
    pub columns: &'a [ColumnSpec],
    /// Lookups (empty for dimensions).
    pub lookups: &'a [LookupSpec],
}

impl<'a> StarTable<'a> {
    fn dimension(index: usize, spec: &'a DimensionSpec) -> Self {
        StarTable {
            kind: TableKind::Dimension,
            index,
            name: &spec.name,
            source: &spec.source,
            key: &spec.key,
            columns: &spec.columns,
            lookups: &[],
        }
    }

    fn fact(index: usize, spec: &'a FactSpec) -> Self {
        StarTable {
            kind: TableKind::Fact,
            index,
            name: &spec.name,
            source: &spec.source,
            key: &spec.key,
            columns: &spec.columns,
            lookups: &spec.lookups,
        }
    }

    /// Field path of this table, e.g. `spec.starSchema.facts[1]`.
    pub fn path(&self) -> String {
        format!("spec.starSchema.{}[{}]", self.kind.list_name(), self.index)
    }

    /// The column copied from source column `source_column`, if any.
    pub fn column_from_source(&self, source_column: &str) -> Option<&'a ColumnSpec> {
        self.columns.iter().find(|c| c.source == source_column)
    }

    /// The key column's spec, if `key` names one of `columns`.
    pub fn key_column(&self) -> Option<&'a ColumnSpec> {
        self.columns.iter().find(|c| c.name == self.key)
    }
}

/// Every dimension, then every fact, in declaration order.
pub fn star_tables(schema: &StarSchemaSpec) -> impl Iterator<Item = StarTable<'_>> {
    let dimensions = schema
        .dimensions
        .iter()
        .enumerate()
        .map(|(i, d)| StarTable::dimension(i, d));
    let facts = schema
        .facts
        .iter()
        .enumerate()
        .map(|(i, f)| StarTable::fact(i, f));
    dimensions.chain(facts)
}

/// The star tables mirroring `source_table`, dimensions first.
pub fn tables_backed_by<'a>(
    schema: &'a StarSchemaSpec,
    source_table: &'a str,
) -> impl Iterator<Item = StarTable<'a>> + 'a {
    star_tables(schema).filter(move |t| t.source == source_table)
}

/// The first star table (dimensions first) mirroring `source_table` that copies `source_column`, with
/// that column.
pub fn column_of_source<'a>(
    schema: &'a StarSchemaSpec,
    source_table: &str,
    source_column: &str,
) -> Option<(StarTable<'a>, &'a ColumnSpec)> {
    star_tables(schema)
        .filter(|t| t.source == source_table)
        .find_map(|t| t.column_from_source(source_column).map(|c| (t, c)))
}

/// One foreign-key step of a lookup, in ClickHouse terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedHop<'a> {
    /// Source table the step starts from (the fact's source for the first step).
    pub from_source: &'a str,
    /// ClickHouse table holding the foreign key (the fact itself for the first step).
    pub from_table: &'a str,
    /// Source column holding the foreign key, as named in CDC payloads (e.g. `customerId`).
    pub foreign_key: &'a str,
    /// ClickHouse column of `from_table` holding the foreign key (e.g. `customer_id`).
    pub foreign_key_column: &'a str,
    /// Referenced source table (e.g. `customer`).
    pub references: &'a str,
    /// ClickHouse table mirroring the referenced source table (e.g. `customer_dim`).
    pub table: &'a str,
    /// Key column of `table`, matched against the foreign key (e.g. `customer_id`).
    pub key_column: &'a str,
}

/// A lookup in ClickHouse terms: follow `hops`, then read `value_column` of the last hop's `table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedLookup<'a> {
    /// Fact column the value is written to.
    pub name: &'a str,
    /// The foreign-key steps, from the fact outwards.
    pub hops: Vec<ResolvedHop<'a>>,
    /// Source column of the last referenced table whose value is copied (e.g. `name`).
    pub source_column: &'a str,
    /// ClickHouse column of the last hop's table holding that value.
    pub value_column: &'a str,
}

/// Why a lookup cannot be resolved; `hop` is the index in `via` (equal to `via.len()` for the final
/// `column`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// `via` is empty.
    #[error("a lookup needs at least one foreign-key step in via")]
    NoHops,
    /// The foreign key is not a column copied into the table the step starts from.
    #[error(
        "foreign key {foreign_key:?} is not the source of any column of {table}; add a column copying {source_table}.{foreign_key}"
    )]
    ForeignKeyNotMapped {
        /// Index in `via`.
        hop: usize,
        foreign_key: String,
        /// Source table the step starts from.
        source_table: String,
        /// Where the column was looked for.
        table: String,
    },
    /// The referenced source table backs no dimension or fact.
    #[error(
        "table {references:?} backs no dimension or fact, so its rows are not available for lookups"
    )]
    NotBacked {
        /// Index in `via`.
        hop: usize,
        /// The referenced source table.
        references: String,
    },
    /// No star table of the referenced source table copies the needed column.
    #[error(
        "no dimension or fact of table {references:?} copies its column {column:?}, which this lookup needs"
    )]
    ColumnNotMapped {
        /// Index in `via` (`via.len()` for the final column).
        hop: usize,
        /// The referenced source table.
        references: String,
        /// The needed source column.
        column: String,
    },
    /// The referenced table's star table has no usable key column.
    #[error("the key of {table} is not one of its columns")]
    NoKey {
        /// Index in `via`.
        hop: usize,
        table: String,
    },
}

impl LookupError {
    /// The field of `lookup` at fault, relative to the lookup (`.via`, `.via[1].foreignKey`, `.column`,
    /// ...).
    pub fn field(&self, lookup: &LookupSpec) -> String {
        match self {
            LookupError::NoHops => ".via".to_owned(),
            LookupError::ForeignKeyNotMapped { hop, .. } => format!(".via[{hop}].foreignKey"),
            LookupError::NotBacked { hop, .. } | LookupError::NoKey { hop, .. } => {
                format!(".via[{hop}].references")
            }
            LookupError::ColumnNotMapped { hop, .. } if *hop >= lookup.via.len() => {
                ".column".to_owned()
            }
            LookupError::ColumnNotMapped { hop, .. } => format!(".via[{hop}].foreignKey"),
        }
    }

    /// Index of the offending step in `via`, or `via.len()` when the final `column` is at fault,
    /// `None` for an empty `via`.
    pub fn hop(&self) -> Option<usize> {
        match self {
            LookupError::NoHops => None,
            LookupError::ForeignKeyNotMapped { hop, .. }
            | LookupError::NotBacked { hop, .. }
            | LookupError::ColumnNotMapped { hop, .. }
            | LookupError::NoKey { hop, .. } => Some(*hop),
        }
    }
}

/// Translate `lookup` of `fact` into ClickHouse tables and columns (see the module docs for the rules).
pub fn resolve_lookup<'a>(
    schema: &'a StarSchemaSpec,
    fact: &'a FactSpec,
    lookup: &'a LookupSpec,
) -> Result<ResolvedLookup<'a>, LookupError> {
    if lookup.via.is_empty() {
        return Err(LookupError::NoHops);
    }
    let fact_table = StarTable::fact(0, fact);
    let mut hops = Vec::with_capacity(lookup.via.len());
    // The foreign key of the first step must be a column of the fact itself.
    let first = &lookup.via[0];
    let mut from_source: &str = &fact.source;
    let mut from_table: &str = &fact.name;
    let mut foreign_key_column = fact_table
        .column_from_source(&first.foreign_key)
        .map(|c| c.name.as_str())
        .ok_or_else(|| LookupError::ForeignKeyNotMapped {
            hop: 0,
            foreign_key: first.foreign_key.clone(),
            source_table: fact.source.clone(),
            table: fact.name.clone(),
        })?;
    for (index, hop) in lookup.via.iter().enumerate() {
        let LookupHop {
            foreign_key,
            references,
        } = hop;
        if tables_backed_by(schema, references).next().is_none() {
            return Err(LookupError::NotBacked {
                hop: index,
                references: references.clone(),
            });
        }
        // The source column the referenced table must provide: the next step's foreign key, or the
        // looked-up column after the last step.
        let (needed, needed_hop) = match lookup.via.get(index + 1) {
            Some(next) => (next.foreign_key.as_str(), index + 1),
            None => (lookup.column.as_str(), lookup.via.len()),
        };
        let (table, needed_column) =
            column_of_source(schema, references, needed).ok_or_else(|| {
                if needed_hop < lookup.via.len() {
                    LookupError::ForeignKeyNotMapped {
                        hop: needed_hop,
                        foreign_key: needed.to_owned(),
                        source_table: references.clone(),
                        table: format!("any dimension or fact of {references:?}"),
                    }
                } else {
                    LookupError::ColumnNotMapped {
                        hop: needed_hop,
                        references: references.clone(),
                        column: needed.to_owned(),
                    }
                }
            })?;
        let key_column =
            table
                .key_column()
                .map(|c| c.name.as_str())
                .ok_or_else(|| LookupError::NoKey {
                    hop: index,
                    table: table.name.to_owned(),
                })?;
        hops.push(ResolvedHop {
            from_source,
            from_table,
            foreign_key,
            foreign_key_column,
            references,
            table: table.name,
            key_column,
        });
        from_source = references;
        from_table = table.name;
        foreign_key_column = &needed_column.name;
    }
    Ok(ResolvedLookup {
        name: &lookup.name,
        hops,
        source_column: &lookup.column,
        value_column: foreign_key_column,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::shop_pipeline;

    #[test]
    fn star_tables_lists_dimensions_then_facts_with_paths() {
        let pipeline = shop_pipeline();
        let names: Vec<_> = star_tables(&pipeline.spec.star_schema)
            .map(|t| (t.name, t.path()))
            .collect();
        assert_eq!(
            names,
            [
                ("customer_dim", "spec.starSchema.dimensions[0]".to_owned()),
                ("product_dim", "spec.starSchema.dimensions[1]".to_owned()),
                ("order_fact", "spec.starSchema.facts[0]".to_owned()),
                ("orderitem_fact", "spec.starSchema.facts[1]".to_owned()),
            ]
        );
    }

    #[test]
    fn single_hop_lookup_resolves_to_the_dimension() {
        let pipeline = shop_pipeline();
        let schema = &pipeline.spec.star_schema;
        let fact = &schema.facts[0];
        let resolved = resolve_lookup(schema, fact, &fact.lookups[0]).unwrap();
        assert_eq!(
            resolved,
            ResolvedLookup {
                name: "customer_name",
                hops: vec![ResolvedHop {
                    from_source: "order",
                    from_table: "order_fact",
                    foreign_key: "customerId",
                    foreign_key_column: "customer_id",
                    references: "customer",
                    table: "customer_dim",
                    key_column: "customer_id",
                }],
                source_column: "name",
                value_column: "name",
            }
        );
    }

    /// The example's two-step lookup: an order item's customer country, through its order.
    fn resolve_customer_country(
        schema: &StarSchemaSpec,
    ) -> Result<ResolvedLookup<'_>, LookupError> {
        let fact = &schema.facts[1];
        let country = fact
            .lookups
            .iter()
            .find(|l| l.name == "customer_country")
            .unwrap();
        resolve_lookup(schema, fact, country)
    }

    #[test]
    fn chained_lookup_goes_through_the_order_fact() {
        let pipeline = shop_pipeline();
        let resolved = resolve_customer_country(&pipeline.spec.star_schema).unwrap();
        let steps: Vec<_> = resolved
            .hops
            .iter()
            .map(|h| (h.from_table, h.foreign_key_column, h.table, h.key_column))
            .collect();
        assert_eq!(
            steps,
            [
                ("orderitem_fact", "order_id", "order_fact", "order_id"),
                ("order_fact", "customer_id", "customer_dim", "customer_id"),
            ]
        );
        assert_eq!(resolved.value_column, "country");
    }

    #[test]
    fn lookup_through_unmapped_foreign_key_names_the_step() {
        let mut pipeline = shop_pipeline();
        let schema = &mut pipeline.spec.star_schema;
        // order_fact no longer copies customerId: the second step of customer_country breaks.
        schema.facts[0].columns.retain(|c| c.source != "customerId");
        let err = resolve_customer_country(schema).unwrap_err();
        assert_eq!(err.hop(), Some(1));
        assert!(
            matches!(err, LookupError::ForeignKeyNotMapped { .. }),
            "{err}"
        );
    }
}
