//! The sink's routing plan, compiled once from the pipeline spec: which star tables each source table
//! feeds, every column with its parsed ClickHouse type, and each fact's lookups as a small tree of
//! queries (one per referenced table and path), plus the reverse index that tells which fact rows a
//! change of a referenced table must rewrite (propagation).
//!
//! Nothing here talks to Kafka or ClickHouse; a spec the sink cannot serve is a [`PlanError`] that names
//! the offending field, reported at startup.

use std::collections::HashMap;

use cdcstar_crds::pipeline::StarSchemaSpec;
use cdcstar_crds::star::{
    IS_DELETED_COLUMN, LSN_COLUMN, SOURCE_LSN_COLUMN, StarTable, TableKind, resolve_lookup,
    star_tables,
};
use cdcstar_crds::unrepresentable::column_policy;
use cdcstar_crds::{ColumnType, OnUnrepresentable};

use crate::value::{is_key_type, quote_ident};

/// Index of a table in [`Plan::tables`].
pub type TableId = usize;

/// Why a spec cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A `type` string is not a supported ClickHouse type.
    #[error("{path}.type: {source}")]
    ColumnType {
        /// Field path of the column.
        path: String,
        /// The parse error.
        source: cdcstar_crds::column_type::ColumnTypeError,
    },
    /// The key does not name a column.
    #[error("{path}.key: {key:?} is not one of the table's columns")]
    MissingKey {
        /// Field path of the table.
        path: String,
        /// The key.
        key: String,
    },
    /// The key column's type cannot be compared in `IN` lists.
    #[error("{path}.key: key column {key:?} has type {ty}; keys must be integers, String or UUID")]
    KeyType {
        /// Field path of the table.
        path: String,
        /// The key.
        key: String,
        /// Its type.
        ty: String,
    },
    /// A star table mirrors a table that is not captured.
    #[error("{path}.source: table {source_table:?} is not listed in spec.source.tables")]
    UnknownSource {
        /// Field path of the table.
        path: String,
        /// The source table.
        source_table: String,
    },
    /// A lookup cannot be resolved.
    #[error("{path}.lookups[{index}]: {reason}")]
    Lookup {
        /// Field path of the fact.
        path: String,
        /// Index of the lookup.
        index: usize,
        /// Why.
        reason: String,
    },
    /// Facts look each other up in a cycle.
    #[error("spec.starSchema.facts: lookups between facts form a cycle through {table}")]
    LookupCycle {
        /// A fact on the cycle.
        table: String,
    },
}

/// A captured source table and the star tables it feeds.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    /// Source table name.
    pub name: String,
    /// Primary key column, as named in payloads.
    pub primary_key: String,
    /// Star tables mirroring it.
    pub targets: Vec<TableId>,
}

/// A column copied from the source row.
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    /// ClickHouse column name.
    pub name: String,
    /// Source column name.
    pub source: String,
    /// ClickHouse type.
    pub ty: ColumnType,
    /// What is written for a value the type cannot hold (resolved by crds: `deadLetter` for the key).
    pub on_unrepresentable: OnUnrepresentable,
}

/// A denormalised fact column.
#[derive(Debug, Clone)]
pub struct LookupPlan {
    /// ClickHouse column name.
    pub name: String,
    /// ClickHouse type.
    pub ty: ColumnType,
    /// Node of [`TablePlan::nodes`] that fetches the value.
    pub node: usize,
    /// Index in that node's `fetched`.
    pub fetch: usize,
}

/// One query of a fact's lookup tree: rows of `table` whose key equals a foreign key reached either
/// from the fact row (root) or from the parent node's fetched row.
#[derive(Debug, Clone)]
pub struct LookupNode {
    /// Parent node; `None` for a node whose foreign key is a column of the fact.
    pub parent: Option<usize>,
    /// Root: index of the fact column holding the foreign key; child: index in the parent's
    /// `fetched`.
    pub foreign_key: usize,
    /// Star table queried.
    pub table: TableId,
    /// Columns fetched, in order.
    pub fetched: Vec<Fetched>,
}

/// A column a lookup node fetches.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// Index of the column in the queried table's `columns`.
    pub column: usize,
    /// Type the value is cast to (a lookup column's type), or `None` for a foreign key read as is.
    pub cast: Option<ColumnType>,
}

/// One star table.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// ClickHouse table name.
    pub name: String,
    /// Dimension or fact.
    pub kind: TableKind,
    /// Source table mirrored.
    pub source: String,
    /// Index of the key in `columns`.
    pub key: usize,
    /// Columns copied from the source row.
    pub columns: Vec<ColumnPlan>,
    /// Lookups (facts only).
    pub lookups: Vec<LookupPlan>,
    /// Lookup queries (facts only).
    pub nodes: Vec<LookupNode>,
}

impl TablePlan {
    /// The key column.
    pub fn key_column(&self) -> &ColumnPlan {
        &self.columns[self.key]
    }

    /// Whether the table carries `source_lsn`.
    pub fn is_fact(&self) -> bool {
        self.kind == TableKind::Fact
    }

    /// Number of values of a row: columns then lookups.
    pub fn width(&self) -> usize {
        self.columns.len() + self.lookups.len()
    }

    /// Type of value `index` of a row.
    pub fn value_type(&self, index: usize) -> &ColumnType {
        if index < self.columns.len() {
            &self.columns[index].ty
        } else {
            &self.lookups[index - self.columns.len()].ty
        }
    }

    /// Name and type of every column a full row writes, bookkeeping columns included, in row order.
    pub fn written_columns(&self) -> Vec<(&str, ColumnType)> {
        let mut columns: Vec<(&str, ColumnType)> = self
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.ty.clone()))
            .chain(self.lookups.iter().map(|l| (l.name.as_str(), l.ty.clone())))
            .collect();
        columns.push((LSN_COLUMN, ColumnType::UInt64));
        columns.push((IS_DELETED_COLUMN, ColumnType::UInt8));
        if self.is_fact() {
            columns.push((SOURCE_LSN_COLUMN, ColumnType::UInt64));
        }
        columns
    }

    /// Quoted column list of a full row, bookkeeping columns included, in row order.
    pub fn column_list(&self) -> String {
        self.written_columns()
            .iter()
            .map(|(name, _)| quote_ident(name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A fact whose rows a change of some table can affect, and through which lookup node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dependent {
    /// The fact.
    pub fact: TableId,
    /// The node of the fact that queries the changed table.
    pub node: usize,
}

/// The compiled spec.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Every star table, dimensions first.
    pub tables: Vec<TablePlan>,
    /// Captured tables by name.
    pub sources: HashMap<String, SourcePlan>,
    /// Facts in an order where a fact comes after every fact it looks up.
    pub fact_order: Vec<TableId>,
    /// For each table, the facts that look it up.
    pub dependents: Vec<Vec<Dependent>>,
}

impl Plan {
    /// Compiles `schema` for the captured tables `sources` (name, primary key).
    pub fn new(schema: &StarSchemaSpec, sources: &[(String, String)]) -> Result<Self, PlanError> {
        let mut source_plans: HashMap<String, SourcePlan> = sources
            .iter()
            .map(|(name, primary_key)| {
                (
                    name.clone(),
                    SourcePlan {
                        name: name.clone(),
                        primary_key: primary_key.clone(),
                        targets: Vec::new(),
                    },
                )
            })
            .collect();
        let star: Vec<StarTable<'_>> = star_tables(schema).collect();
        let mut tables = Vec::with_capacity(star.len());
        for (id, table) in star.iter().enumerate() {
            let path = table.path();
            let columns = table
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    Ok(ColumnPlan {
                        name: c.name.clone(),
                        source: c.source.clone(),
                        ty: c.r#type.parse().map_err(|source| PlanError::ColumnType {
                            path: format!("{path}.columns[{i}]"),
                            source,
                        })?,
                        on_unrepresentable: column_policy(schema, table, c),
                    })
                })
                .collect::<Result<Vec<_>, PlanError>>()?;
            let key = columns
                .iter()
                .position(|c| c.name == table.key)
                .ok_or_else(|| PlanError::MissingKey {
                    path: path.clone(),
                    key: table.key.to_owned(),
                })?;
            if !is_key_type(&columns[key].ty) {
                return Err(PlanError::KeyType {
                    path,
                    key: table.key.to_owned(),
                    ty: columns[key].ty.to_string(),
                });
            }
            source_plans
                .get_mut(table.source)
                .ok_or_else(|| PlanError::UnknownSource {
                    path: path.clone(),
                    source_table: table.source.to_owned(),
                })?
                .targets
                .push(id);
            tables.push(TablePlan {
                name: table.name.to_owned(),
                kind: table.kind,
                source: table.source.to_owned(),
                key,
                columns,
                lookups: Vec::new(),
                nodes: Vec::new(),
            });
        }
        for (id, table) in star.iter().enumerate() {
            if table.kind != TableKind::Fact {
                continue;
            }
            let fact = &schema.facts[table.index];
            for (index, lookup) in fact.lookups.iter().enumerate() {
                let lookup_error = |reason: String| PlanError::Lookup {
                    path: table.path(),
                    index,
                    reason,
                };
                let ty: ColumnType =
                    lookup
                        .r#type
                        .parse()
                        .map_err(|source| PlanError::ColumnType {
                            path: format!("{}.lookups[{index}]", table.path()),
                            source,
                        })?;
                let resolved = resolve_lookup(schema, fact, lookup)
                    .map_err(|e| lookup_error(e.to_string()))?;
                let mut parent: Option<usize> = None;
                for (hop_index, hop) in resolved.hops.iter().enumerate() {
                    let target = tables
                        .iter()
                        .position(|t| t.name == hop.table)
                        .ok_or_else(|| lookup_error(format!("unknown table {}", hop.table)))?;
                    let from = if hop_index == 0 {
                        id
                    } else {
                        tables
                            .iter()
                            .position(|t| t.name == hop.from_table)
                            .ok_or_else(|| {
                                lookup_error(format!("unknown table {}", hop.from_table))
                            })?
                    };
                    let fk_column = tables[from]
                        .columns
                        .iter()
                        .position(|c| c.name == hop.foreign_key_column)
                        .ok_or_else(|| {
                            lookup_error(format!(
                                "{} has no column {}",
                                hop.from_table, hop.foreign_key_column
                            ))
                        })?;
                    if tables[target].columns[tables[target].key].name != hop.key_column {
                        return Err(lookup_error(format!(
                            "{} is not keyed by {}",
                            hop.table, hop.key_column
                        )));
                    }
                    let foreign_key = match parent {
                        None => fk_column,
                        Some(p) => fetch_index(&mut tables[id].nodes[p], fk_column, None),
                    };
                    let existing = tables[id].nodes.iter().position(|n| {
                        n.parent == parent && n.foreign_key == foreign_key && n.table == target
                    });
                    let node = match existing {
                        Some(node) => node,
                        None => {
                            tables[id].nodes.push(LookupNode {
                                parent,
                                foreign_key,
                                table: target,
                                fetched: Vec::new(),
                            });
                            tables[id].nodes.len() - 1
                        }
                    };
                    parent = Some(node);
                }
                let node = parent.ok_or_else(|| lookup_error("no foreign-key step".into()))?;
                let target = tables[id].nodes[node].table;
                let value_column = tables[target]
                    .columns
                    .iter()
                    .position(|c| c.name == resolved.value_column)
                    .ok_or_else(|| {
                        lookup_error(format!(
                            "{} has no column {}",
                            tables[target].name, resolved.value_column
                        ))
                    })?;
                let fetch =
                    fetch_index(&mut tables[id].nodes[node], value_column, Some(ty.clone()));
                tables[id].lookups.push(LookupPlan {
                    name: lookup.name.clone(),
                    ty,
                    node,
                    fetch,
                });
            }
        }
        let mut dependents = vec![Vec::new(); tables.len()];
        for (fact, table) in tables.iter().enumerate() {
            for (node, n) in table.nodes.iter().enumerate() {
                dependents[n.table].push(Dependent { fact, node });
            }
        }
        let fact_order = fact_order(&tables)?;
        Ok(Plan {
            tables,
            sources: source_plans,
            fact_order,
            dependents,
        })
    }

    /// Compiles the plan of a pipeline.
    pub fn for_pipeline(pipeline: &cdcstar_crds::CdcPipelineSpec) -> Result<Self, PlanError> {
        let sources: Vec<(String, String)> = pipeline
            .source
            .tables
            .iter()
            .map(|t| (t.name.clone(), t.primary_key.clone()))
            .collect();
        Plan::new(&pipeline.star_schema, &sources)
    }

    /// The table called `name`.
    pub fn table_id(&self, name: &str) -> Option<TableId> {
        self.tables.iter().position(|t| t.name == name)
    }

    /// Dimension ids, in declaration order.
    pub fn dimension_ids(&self) -> impl Iterator<Item = TableId> + '_ {
        self.tables
            .iter()
            .enumerate()
            .filter(|(_, t)| t.kind == TableKind::Dimension)
            .map(|(id, _)| id)
    }
}

fn fetch_index(node: &mut LookupNode, column: usize, cast: Option<ColumnType>) -> usize {
    let wanted = Fetched { column, cast };
    match node.fetched.iter().position(|f| *f == wanted) {
        Some(i) => i,
        None => {
            node.fetched.push(wanted);
            node.fetched.len() - 1
        }
    }
}

/// Facts ordered so that a fact comes after the facts its lookups read.
fn fact_order(tables: &[TablePlan]) -> Result<Vec<TableId>, PlanError> {
    let facts: Vec<TableId> = (0..tables.len())
        .filter(|&id| tables[id].is_fact())
        .collect();
    let mut order = Vec::with_capacity(facts.len());
    let mut placed = vec![false; tables.len()];
    while order.len() < facts.len() {
        let ready = facts.iter().copied().find(|&id| {
            !placed[id]
                && tables[id]
                    .nodes
                    .iter()
                    .all(|n| n.table == id || !tables[n.table].is_fact() || placed[n.table])
        });
        match ready {
            Some(id) => {
                placed[id] = true;
                order.push(id);
            }
            None => {
                let stuck = facts.iter().find(|&&id| !placed[id]).copied().unwrap_or(0);
                return Err(PlanError::LookupCycle {
                    table: tables[stuck].name.clone(),
                });
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The example pipeline of the repository.
    pub(crate) fn shop() -> cdcstar_crds::CdcPipeline {
        let text = include_str!("../../examples/shop-pipeline.yaml");
        serde_yaml::from_str(text).expect("example pipeline parses")
    }

    #[test]
    fn shop_routes_each_source_to_its_star_table() {
        let plan = Plan::for_pipeline(&shop().spec).unwrap();
        let target = |source: &str| -> Vec<&str> {
            plan.sources[source]
                .targets
                .iter()
                .map(|&t| plan.tables[t].name.as_str())
                .collect()
        };
        assert_eq!(target("customer"), ["customer_dim"]);
        assert_eq!(target("order"), ["order_fact"]);
        assert_eq!(target("orderitem"), ["orderitem_fact"]);
        let order_fact = plan.table_id("order_fact").unwrap();
        let orderitem_fact = plan.table_id("orderitem_fact").unwrap();
        assert_eq!(plan.fact_order, [order_fact, orderitem_fact]);
    }

    #[test]
    fn lookups_share_one_query_per_referenced_path() {
        let plan = Plan::for_pipeline(&shop().spec).unwrap();
        let fact = &plan.tables[plan.table_id("orderitem_fact").unwrap()];
        // product, order, and customer through the order: three queries for six lookups.
        let queried: Vec<(&str, Option<usize>)> = fact
            .nodes
            .iter()
            .map(|n| (plan.tables[n.table].name.as_str(), n.parent))
            .collect();
        assert_eq!(
            queried,
            [
                ("product_dim", None),
                ("order_fact", None),
                ("customer_dim", Some(1))
            ]
        );
        let country = fact
            .lookups
            .iter()
            .find(|l| l.name == "customer_country")
            .unwrap();
        assert_eq!(country.node, 2);
        // The order node fetches status, order date and the customer id for the next step.
        assert_eq!(fact.nodes[1].fetched.len(), 3);
        let customer_dim = plan.table_id("customer_dim").unwrap();
        let deps: Vec<&str> = plan.dependents[customer_dim]
            .iter()
            .map(|d| plan.tables[d.fact].name.as_str())
            .collect();
        assert_eq!(deps, ["order_fact", "orderitem_fact"]);
    }

    #[test]
    fn bad_type_and_unknown_source_name_the_field() {
        let mut pipeline = shop();
        pipeline.spec.star_schema.dimensions[0].columns[1].r#type = "Varchar".into();
        let err = Plan::for_pipeline(&pipeline.spec).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.starSchema.dimensions[0].columns[1].type:"),
            "{err}"
        );
        let mut pipeline = shop();
        pipeline.spec.source.tables.retain(|t| t.name != "product");
        let err = Plan::for_pipeline(&pipeline.spec).unwrap_err();
        assert!(matches!(err, PlanError::UnknownSource { .. }), "{err}");
    }

    #[test]
    fn float_keys_are_refused() {
        let mut pipeline = shop();
        pipeline.spec.star_schema.dimensions[0].columns[0].r#type = "Float64".into();
        let err = Plan::for_pipeline(&pipeline.spec).unwrap_err();
        assert!(matches!(err, PlanError::KeyType { .. }), "{err}");
    }
}
