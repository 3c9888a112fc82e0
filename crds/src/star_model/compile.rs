//! Compiling a spec into a [`StarModel`], and the one rule set of what the model refuses: a `type` that
//! is not a supported ClickHouse type, a key that is not a column or whose type cannot key a table, a
//! star table of a table that is not captured, a lookup that does not resolve, and facts that look each
//! other up in a cycle. Every error names its field path; [`crate::validate()`] reports them all.
//!
//! Over 400 lines only with its tests; the compiler itself is under 400.

use std::collections::HashMap;
use std::fmt;

use crate::column_type::{ColumnType, ColumnTypeError};
use crate::pipeline::{CdcPipelineSpec, StarSchemaSpec};
use crate::star::{StarTable, resolve_lookup, star_tables};
use crate::unrepresentable::column_policy;

use super::{
    CopiedColumn, Dependent, Fetched, LookupColumn, LookupNode, SourceRoute, StarModel, TableId,
    TableModel,
};

/// Why a spec cannot be compiled, at a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// A `type` string is not a supported ClickHouse type.
    ColumnType {
        /// Field path of the `type`.
        path: String,
        /// Why the text is not one of the supported types.
        source: ColumnTypeError,
    },
    /// The key does not name a column.
    MissingKey {
        /// Field path of the `key`.
        path: String,
        /// The `key` as written, naming no column.
        key: String,
        /// The captured table the star table mirrors.
        source_table: String,
        /// Its primary key, which a key column must copy (the fix the message suggests).
        primary_key: String,
    },
    /// The key column's type cannot key a table ([`ColumnType::is_key`]).
    KeyType {
        /// Field path of the `key`.
        path: String,
        /// Name of the key column.
        key: String,
        /// Its parsed type: nullable, floating point, decimal, a date or `Bool`.
        ty: ColumnType,
    },
    /// A star table mirrors a table that is not captured.
    UnknownSource {
        /// Field path of the `source`.
        path: String,
        /// The `source` as written, absent from `spec.source.tables`.
        source_table: String,
    },
    /// A lookup cannot be resolved.
    Lookup {
        /// Field path of the part of the lookup at fault.
        path: String,
        /// Index of the fact in `spec.starSchema.facts`.
        fact: usize,
        /// Index of the lookup in the fact's `lookups`.
        index: usize,
        /// What resolving the lookup did not find, as the message says it.
        reason: String,
    },
    /// Facts look each other up in a cycle.
    LookupCycle {
        /// Field path of the `lookups` of a fact on the cycle.
        path: String,
        /// Name of a fact on the cycle (the first one left unordered).
        table: String,
    },
}

impl ModelError {
    /// The field path the error is about.
    pub fn path(&self) -> &str {
        match self {
            ModelError::ColumnType { path, .. }
            | ModelError::MissingKey { path, .. }
            | ModelError::KeyType { path, .. }
            | ModelError::UnknownSource { path, .. }
            | ModelError::Lookup { path, .. }
            | ModelError::LookupCycle { path, .. } => path,
        }
    }

    /// What is wrong, without the path.
    pub fn message(&self) -> String {
        match self {
            ModelError::ColumnType { source, .. } => source.to_string(),
            ModelError::MissingKey {
                key,
                source_table,
                primary_key,
                ..
            } => format!(
                "{key:?} is not one of the table's columns; add a column copying {source_table}.{primary_key}"
            ),
            ModelError::KeyType { key, ty, .. } if ty.is_nullable() => {
                format!("key column {key:?} must not be nullable ({ty})")
            }
            ModelError::KeyType { key, ty, .. } => {
                format!("key column {key:?} has type {ty}; keys must be integers, String or UUID")
            }
            ModelError::UnknownSource { source_table, .. } => {
                format!("{source_table:?} is not a captured table; add it to spec.source.tables")
            }
            ModelError::Lookup { reason, .. } => reason.clone(),
            ModelError::LookupCycle { table, .. } => {
                format!("lookups between facts form a cycle through {table}")
            }
        }
    }
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path(), self.message())
    }
}

impl std::error::Error for ModelError {}

/// Every reason a spec cannot be compiled, in spec order (a cycle last).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ModelErrors(pub Vec<ModelError>);

impl fmt::Display for ModelErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&texts.join("; "))
    }
}

impl StarModel {
    /// Compiles the star schema of a pipeline.
    pub fn for_pipeline(pipeline: &CdcPipelineSpec) -> Result<Self, ModelErrors> {
        let sources: Vec<(String, String)> = pipeline
            .source
            .tables
            .iter()
            .map(|t| (t.name.clone(), t.primary_key.clone()))
            .collect();
        StarModel::new(&pipeline.star_schema, &sources)
    }

    /// Compiles `schema` for the captured tables `sources` (name, primary key).
    pub fn new(schema: &StarSchemaSpec, sources: &[(String, String)]) -> Result<Self, ModelErrors> {
        let mut routes: HashMap<String, SourceRoute> = sources
            .iter()
            .map(|(name, primary_key)| {
                let route = SourceRoute {
                    name: name.clone(),
                    primary_key: primary_key.clone(),
                    targets: Vec::new(),
                };
                (name.clone(), route)
            })
            .collect();
        let mut errors = Vec::new();
        let star: Vec<StarTable<'_>> = star_tables(schema).collect();
        let mut tables = Vec::with_capacity(star.len());
        for (id, table) in star.iter().enumerate() {
            tables.push(compile_table(schema, table, id, &mut routes, &mut errors));
        }
        for (id, table) in star.iter().enumerate() {
            for index in 0..table.lookups.len() {
                if let Err(error) =
                    compile_lookup(schema, &star, &mut tables, id, index, &mut errors)
                {
                    errors.push(error);
                }
            }
        }
        if !errors.is_empty() {
            return Err(ModelErrors(errors));
        }
        let fact_order = fact_order(&tables).map_err(|stuck| {
            ModelErrors(vec![ModelError::LookupCycle {
                path: format!("{}.lookups", star[stuck].path()),
                table: tables[stuck].name.clone(),
            }])
        })?;
        let mut dependents = vec![Vec::new(); tables.len()];
        for (fact, table) in tables.iter().enumerate() {
            for (node, n) in table.nodes.iter().enumerate() {
                dependents[n.table].push(Dependent { fact, node });
            }
        }
        Ok(StarModel {
            tables,
            sources: routes,
            fact_order,
            dependents,
        })
    }
}

/// Parses a `type` at `path`; an unsupported one is an error and `String` stands in for it, so that
/// the rest of the spec is still checked.
fn parse_type(path: String, text: &str, errors: &mut Vec<ModelError>) -> ColumnType {
    text.parse().unwrap_or_else(|source| {
        errors.push(ModelError::ColumnType { path, source });
        ColumnType::String
    })
}

/// A table with its columns and key, without lookups; routes its source to it.
fn compile_table(
    schema: &StarSchemaSpec,
    table: &StarTable<'_>,
    id: TableId,
    routes: &mut HashMap<String, SourceRoute>,
    errors: &mut Vec<ModelError>,
) -> TableModel {
    let path = table.path();
    let before = errors.len();
    let columns: Vec<CopiedColumn> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| CopiedColumn {
            name: c.name.clone(),
            source: c.source.clone(),
            ty: parse_type(format!("{path}.columns[{i}].type"), &c.r#type, errors),
            on_unrepresentable: column_policy(schema, table, c),
        })
        .collect();
    let types_parsed = errors.len() == before;
    let key = columns.iter().position(|c| c.name == table.key);
    match routes.get_mut(table.source) {
        None => errors.push(ModelError::UnknownSource {
            path: format!("{path}.source"),
            source_table: table.source.to_owned(),
        }),
        Some(route) => {
            route.targets.push(id);
            match key {
                None => errors.push(ModelError::MissingKey {
                    path: format!("{path}.key"),
                    key: table.key.to_owned(),
                    source_table: table.source.to_owned(),
                    primary_key: route.primary_key.clone(),
                }),
                Some(key) if types_parsed && !columns[key].ty.is_key() => {
                    errors.push(ModelError::KeyType {
                        path: format!("{path}.key"),
                        key: table.key.to_owned(),
                        ty: columns[key].ty.clone(),
                    })
                }
                Some(_) => {}
            }
        }
    }
    TableModel {
        name: table.name.to_owned(),
        kind: table.kind,
        source: table.source.to_owned(),
        key: key.unwrap_or(0),
        columns,
        lookups: Vec::new(),
        nodes: Vec::new(),
    }
}

/// Adds lookup `index` of fact `id` to the fact's lookup tree; an unsupported `type` goes to `errors`
/// and the lookup is still resolved.
fn compile_lookup(
    schema: &StarSchemaSpec,
    star: &[StarTable<'_>],
    tables: &mut [TableModel],
    id: TableId,
    index: usize,
    errors: &mut Vec<ModelError>,
) -> Result<(), ModelError> {
    let table = &star[id];
    let fact = &schema.facts[table.index];
    let lookup = &fact.lookups[index];
    let lookup_path = format!("{}.lookups[{index}]", table.path());
    let lookup_error = |field: String, reason: String| ModelError::Lookup {
        path: format!("{lookup_path}{field}"),
        fact: table.index,
        index,
        reason,
    };
    let ty = parse_type(format!("{lookup_path}.type"), &lookup.r#type, errors);
    let resolved = resolve_lookup(schema, fact, lookup)
        .map_err(|e| lookup_error(e.field(lookup), e.to_string()))?;
    let no_column = |field: String, table: &str, column: &str| {
        lookup_error(field, format!("{table} has no column {column}"))
    };
    let find = |name: &str| {
        star.iter()
            .position(|t| t.name == name)
            .ok_or_else(|| lookup_error(String::new(), format!("unknown table {name}")))
    };
    let mut parent: Option<usize> = None;
    for (hop_index, hop) in resolved.hops.iter().enumerate() {
        let target = find(hop.table)?;
        let from = if hop_index == 0 {
            id
        } else {
            find(hop.from_table)?
        };
        let fk_column = tables[from]
            .column_index(hop.foreign_key_column)
            .ok_or_else(|| no_column(String::new(), hop.from_table, hop.foreign_key_column))?;
        let target_key = tables[target].columns.get(tables[target].key);
        if target_key.map(|c| c.name.as_str()) != Some(hop.key_column) {
            let reason = format!("{} is not keyed by {}", hop.table, hop.key_column);
            return Err(lookup_error(String::new(), reason));
        }
        let foreign_key = match parent {
            None => fk_column,
            Some(p) => fetch_index(&mut tables[id].nodes[p], fk_column, None),
        };
        let nodes = &mut tables[id].nodes;
        let existing = nodes
            .iter()
            .position(|n| n.parent == parent && n.foreign_key == foreign_key && n.table == target);
        parent = Some(existing.unwrap_or_else(|| {
            nodes.push(LookupNode {
                parent,
                foreign_key,
                table: target,
                fetched: Vec::new(),
            });
            nodes.len() - 1
        }));
    }
    let node = parent.ok_or_else(|| lookup_error(".via".into(), "no foreign-key step".into()))?;
    let target = tables[id].nodes[node].table;
    let value_column = tables[target]
        .column_index(resolved.value_column)
        .ok_or_else(|| {
            no_column(
                ".column".into(),
                &tables[target].name,
                resolved.value_column,
            )
        })?;
    let fetch = fetch_index(&mut tables[id].nodes[node], value_column, Some(ty.clone()));
    tables[id].lookups.push(LookupColumn {
        name: lookup.name.clone(),
        ty,
        node,
        fetch,
    });
    Ok(())
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

/// Facts ordered so that a fact comes after the facts its lookups read; `Err` holds a fact on a cycle.
fn fact_order(tables: &[TableModel]) -> Result<Vec<TableId>, TableId> {
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
        let Some(id) = ready else {
            return Err(facts.iter().copied().find(|&id| !placed[id]).unwrap_or(0));
        };
        placed[id] = true;
        order.push(id);
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{shop_model, shop_pipeline};

    #[test]
    fn shop_routes_each_source_to_its_star_table() {
        let model = shop_model();
        let target = |source: &str| -> Vec<&str> {
            model.sources[source]
                .targets
                .iter()
                .map(|&t| model.tables[t].name.as_str())
                .collect()
        };
        assert_eq!(target("customer"), ["customer_dim"]);
        assert_eq!(target("order"), ["order_fact"]);
        assert_eq!(target("orderitem"), ["orderitem_fact"]);
        let order_fact = model.table_id("order_fact").unwrap();
        let orderitem_fact = model.table_id("orderitem_fact").unwrap();
        assert_eq!(model.fact_order, [order_fact, orderitem_fact]);
    }

    #[test]
    fn lookups_share_one_query_per_referenced_path() {
        let model = shop_model();
        let fact = &model.tables[model.table_id("orderitem_fact").unwrap()];
        // product, order, and customer through the order: three queries for six lookups.
        let queried: Vec<(&str, Option<usize>)> = fact
            .nodes
            .iter()
            .map(|n| (model.tables[n.table].name.as_str(), n.parent))
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
        let customer_dim = model.table_id("customer_dim").unwrap();
        let deps: Vec<&str> = model.dependents[customer_dim]
            .iter()
            .map(|d| model.tables[d.fact].name.as_str())
            .collect();
        assert_eq!(deps, ["order_fact", "orderitem_fact"]);
    }

    #[test]
    fn every_error_names_its_field() {
        let mut pipeline = shop_pipeline();
        pipeline.spec.star_schema.dimensions[0].columns[1].r#type = "Varchar".into();
        pipeline.spec.star_schema.dimensions[1].columns[0].r#type = "Float64".into();
        pipeline.spec.source.tables.retain(|t| t.name != "customer");
        let errors = StarModel::for_pipeline(&pipeline.spec).unwrap_err().0;
        let paths: Vec<&str> = errors.iter().map(ModelError::path).collect();
        assert_eq!(
            paths,
            [
                "spec.starSchema.dimensions[0].columns[1].type",
                "spec.starSchema.dimensions[0].source",
                "spec.starSchema.dimensions[1].key",
            ]
        );
        assert!(
            matches!(errors[2], ModelError::KeyType { .. }),
            "{}",
            errors[2]
        );
    }

    #[test]
    fn the_table_order_is_columns_lookups_then_bookkeeping() {
        let model = shop_model();
        let order_fact = &model.tables[model.table_id("order_fact").unwrap()];
        let names: Vec<String> = order_fact
            .schema_columns()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names[5..],
            [
                "customer_name",
                "customer_email",
                "source_lsn",
                "lsn",
                "is_deleted"
            ]
        );
    }
}
