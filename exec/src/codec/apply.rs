//! A correlated apply (`tributary_planner::apply::CorrelatedApplyExec`) on the wire: its subqueries
//! travel as datafusion-proto logical plans (their outer references are placeholders `$1..$n`, which
//! datafusion-proto encodes; it does not encode outer references), planned per binding on the
//! worker as on the coordinator.
//!
//! A subquery's table scans travel as what the worker rebuilds them from:
//! - a table of a mounted catalog as its full name, resolved through the worker's own catalogs when
//!   the apply first runs (resolution is asynchronous, decoding is not), and refused there if its
//!   columns differ from the coordinator's; a catalog the worker has not mounted fails the decode,
//!   so the worker reads its catalog directory and tries again (`rpc`);
//! - lake file listings as datafusion-proto writes them.
//!
//! The subquery plans are as the optimizer left them when it made the apply (right after
//! decorrelation, before pushdown), so they name tables, not statements pushed to a source; each
//! binding's plan is optimized (and pushed down) where it runs.
//!
//! Anything else is refused, and the apply's stage stays on the coordinator: a `system` or
//! `information_schema`/`pg_catalog` table (the coordinator's own state), a table function
//! (`generate_series(...)`, no table of a catalog), an `EXISTS`/`IN` subquery or a reference to an
//! outer query left inside the subquery (datafusion-proto encodes neither), a function the worker
//! lacks.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::{Column, DataFusionError, Result, TableReference};
use datafusion::execution::TaskContext;
use datafusion::execution::context::SessionState;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{
    AggregateUDF, Extension, HigherOrderUDF, LogicalPlan, ScalarUDF, WindowUDF,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::{AsLogicalPlan, LogicalExtensionCodec};
use datafusion_proto::physical_plan::{PhysicalPlanDecodeContext, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf;
use parking_lot::Mutex;
use prost::Message;
use tributary_planner::apply::{ApplyKind, ApplySubquery, CorrelatedApplyExec, SubqueryLoader};

use super::{
    Shared, TributaryCodec, aggregate_type, decode_schema, higher_order_type, required,
    scalar_type, window_type,
};

/// Schemas whose tables are the coordinator's own state, never resolved on a worker by name.
const COORDINATOR_SCHEMAS: &[&str] = &["information_schema", "pg_catalog"];

/// `apply` as its wire shape (its input travels as the extension node's input).
pub(super) fn encode(
    codec: &TributaryCodec,
    apply: &CorrelatedApplyExec,
    converter: &dyn PhysicalProtoConverterExtension,
) -> Result<ApplyNode> {
    let options = &apply.session().config().options().catalog;
    let mut subqueries = Vec::new();
    for (i, s) in apply.subqueries().iter().enumerate() {
        let Some(plan) = s.planned() else {
            return Err(codec.refuse("a correlated apply decoded from another node".into()));
        };
        let logical = SubqueryCodec::encoding(
            Arc::clone(&codec.shared),
            &options.default_catalog,
            &options.default_schema,
        );
        let node = protobuf::LogicalPlanNode::try_from_logical_plan(plan, &logical)
            .map_err(|e| codec.refuse(format!("correlated subquery {}: {e}", i + 1)))?;
        let (kind, negated, expr, ty) = match &s.kind {
            ApplyKind::Scalar => (SCALAR, false, None, None),
            ApplyKind::Exists { negated } => (EXISTS, *negated, None, None),
            ApplyKind::In { expr, ty, negated } => (
                IN,
                *negated,
                Some(converter.physical_expr_to_proto(expr, codec)?),
                Some(ty.try_into()?),
            ),
        };
        subqueries.push(SubqueryNode {
            kind,
            negated,
            expr,
            ty,
            bindings: s
                .bindings
                .iter()
                .map(|(index, column)| BindingNode {
                    index: *index as u64,
                    relation: column.relation.clone().map(Into::into),
                    name: column.name.clone(),
                })
                .collect(),
            plan: node.encode_to_vec(),
            tables: logical.named.into_inner(),
        });
    }
    Ok(ApplyNode {
        schema: Some(apply.schema().as_ref().try_into()?),
        subqueries,
    })
}

/// Rebuilds the apply `node` over `input`, its subqueries planned with a session of this node's
/// catalogs and `ctx`'s settings.
pub(super) fn decode(
    shared: &Arc<Shared>,
    node: &ApplyNode,
    input: Arc<dyn ExecutionPlan>,
    ctx: &TaskContext,
    converter: &dyn PhysicalProtoConverterExtension,
    decode_ctx: &PhysicalPlanDecodeContext<'_>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let input_schema = input.schema();
    let mut subqueries = Vec::new();
    for s in &node.subqueries {
        let kind = match s.kind {
            SCALAR => ApplyKind::Scalar,
            EXISTS => ApplyKind::Exists { negated: s.negated },
            IN => ApplyKind::In {
                expr: converter.proto_to_physical_expr(
                    required(s.expr.as_ref(), "IN expression")?,
                    &input_schema,
                    decode_ctx,
                )?,
                ty: required(s.ty.as_ref(), "IN type")?.try_into()?,
                negated: s.negated,
            },
            other => {
                return Err(DataFusionError::Internal(format!(
                    "bad Tributary apply node: subquery kind {other}"
                )));
            }
        };
        let bindings = s
            .bindings
            .iter()
            .map(|b| {
                let index = b.index as usize;
                if index >= input_schema.fields().len() {
                    return Err(DataFusionError::Internal(format!(
                        "bad Tributary apply node: binding of input column {index}"
                    )));
                }
                let relation = b
                    .relation
                    .clone()
                    .map(TableReference::try_from)
                    .transpose()?;
                Ok((index, Column::new(relation, &b.name)))
            })
            .collect::<Result<Vec<(usize, Column)>>>()?;
        // A catalog this node has not mounted yet: fail now, so the node reads its catalog
        // directory and decodes again.
        if let Some(t) = s
            .tables
            .iter()
            .find(|t| shared.registry.get(&t.catalog).is_none())
        {
            return Err(DataFusionError::Plan(format!(
                "catalog {} of a correlated subquery is not mounted on this node",
                t.catalog
            )));
        }
        let loader = ShippedSubquery {
            shared: Arc::clone(shared),
            plan: s.plan.clone(),
            tables: s.tables.clone(),
        };
        subqueries.push(ApplySubquery::loaded(kind, bindings, Arc::new(loader)));
    }
    Ok(Arc::new(CorrelatedApplyExec::new(
        input,
        Arc::new(subqueries),
        decode_schema(node.schema.as_ref())?,
        Arc::new(worker_session(shared, ctx)),
    )))
}

/// A session of this node's catalogs, functions and rules (what the coordinator's sessions plan
/// with) under `ctx`'s settings (the query's).
fn worker_session(shared: &Shared, ctx: &TaskContext) -> SessionState {
    let config = ctx.session_config();
    let options = &config.options().catalog;
    let session = tributary_planner::session::new_session_context(
        &shared.registry,
        ctx.runtime_env(),
        &options.default_catalog,
        &options.default_schema,
        config.target_partitions(),
    );
    SessionStateBuilder::new_from_existing(session.state())
        .with_config(config.clone())
        .build()
}

/// A subquery's encoded logical plan, rebuilt on first use (see the module docs).
struct ShippedSubquery {
    shared: Arc<Shared>,
    plan: Vec<u8>,
    tables: Vec<NamedTable>,
}

impl std::fmt::Debug for ShippedSubquery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShippedSubquery")
            .field("plan_bytes", &self.plan.len())
            .field("tables", &self.tables)
            .finish()
    }
}

#[async_trait]
impl SubqueryLoader for ShippedSubquery {
    async fn load(&self, state: &SessionState) -> Result<LogicalPlan> {
        let mut resolved = HashMap::new();
        for t in &self.tables {
            let name = t.name();
            let lookup = || {
                state
                    .catalog_list()
                    .catalog(&t.catalog)
                    .and_then(|c| c.schema(&t.schema))
            };
            let mut schema = lookup();
            if schema.is_none() {
                // A schema the coordinator created after this node listed the catalog.
                if let Some(writable) = self
                    .shared
                    .registry
                    .get(&t.catalog)
                    .and_then(|c| c.writable())
                {
                    writable.discover_schema(&t.schema).await?;
                    schema = lookup();
                }
            }
            let provider = match schema {
                Some(schema) => schema.table(&t.table).await?,
                None => None,
            };
            let provider = provider.ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "table {name} of a correlated subquery does not exist on this worker"
                ))
            })?;
            resolved.insert(t.key(), provider);
        }
        let node = protobuf::LogicalPlanNode::decode(self.plan.as_slice())
            .map_err(|e| DataFusionError::Internal(format!("bad Tributary subquery plan: {e}")))?;
        let codec = SubqueryCodec::decoding(Arc::clone(&self.shared), resolved);
        node.try_into_logical_plan(&TaskContext::from(state), &codec)
    }
}

/// The logical extension codec of one subquery plan: table scans as [`TableNode`]s, functions
/// checked against a plain worker session's.
#[derive(Debug)]
struct SubqueryCodec {
    shared: Arc<Shared>,
    /// The session's default catalog and schema, which complete a partial table name.
    defaults: (String, String),
    /// Encoding: the tables the plan reads by name, in first-seen order.
    named: Mutex<Vec<NamedTable>>,
    /// Decoding: those tables as this node resolved them, by [`NamedTable::key`].
    resolved: HashMap<(String, String, String), Arc<dyn TableProvider>>,
}

impl SubqueryCodec {
    fn encoding(shared: Arc<Shared>, catalog: &str, schema: &str) -> Self {
        Self {
            shared,
            defaults: (catalog.to_string(), schema.to_string()),
            named: Mutex::new(Vec::new()),
            resolved: HashMap::new(),
        }
    }

    fn decoding(
        shared: Arc<Shared>,
        resolved: HashMap<(String, String, String), Arc<dyn TableProvider>>,
    ) -> Self {
        Self {
            shared,
            defaults: Default::default(),
            named: Mutex::new(Vec::new()),
            resolved,
        }
    }

    fn check(
        &self,
        kind: &str,
        known: &HashMap<String, std::any::TypeId>,
        name: &str,
        type_id: std::any::TypeId,
    ) -> Result<()> {
        super::worker_has(known, name, type_id)
            .then_some(())
            .ok_or_else(|| DataFusionError::NotImplemented(super::no_such_function(kind, name)))
    }
}

impl LogicalExtensionCodec for SubqueryCodec {
    fn try_decode(
        &self,
        _buf: &[u8],
        _inputs: &[LogicalPlan],
        _ctx: &TaskContext,
    ) -> Result<Extension> {
        Err(DataFusionError::Internal(
            "bad Tributary subquery plan: it has no extension nodes".into(),
        ))
    }

    fn try_encode(&self, node: &Extension, _buf: &mut Vec<u8>) -> Result<()> {
        Err(DataFusionError::NotImplemented(format!(
            "plan node {}",
            node.node.name()
        )))
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        _table_ref: &TableReference,
        schema: SchemaRef,
        _ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        let node = TableNode::decode(buf)
            .map_err(|e| DataFusionError::Internal(format!("bad Tributary table node: {e}")))?;
        match node.kind {
            Some(TableKind::Named(t)) => {
                let name = t.name();
                let provider = self.resolved.get(&t.key()).ok_or_else(|| {
                    DataFusionError::Internal(format!("table {name} was not resolved"))
                })?;
                if provider.schema().fields() != schema.fields() {
                    return Err(DataFusionError::Plan(format!(
                        "table {name} has other columns on this worker than on the coordinator"
                    )));
                }
                Ok(Arc::clone(provider))
            }
            None => Err(DataFusionError::Internal(
                "bad Tributary table node: empty".into(),
            )),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        _node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let name = table_ref
            .clone()
            .resolve(&self.defaults.0, &self.defaults.1);
        // The table must be one its catalog lists under that name (not a table function's scan,
        // not a statement the planner pushed to a source), of a catalog whose rows every node
        // reads alike.
        let listed = self
            .shared
            .registry
            .get(&name.catalog)
            .filter(|c| c.kind() != tributary_connectors::system::KIND)
            .and_then(|c| c.catalog().schema(&name.schema))
            .is_some_and(|s| s.table_exist(&name.table));
        if !listed || COORDINATOR_SCHEMAS.contains(&name.schema.as_ref()) {
            return Err(DataFusionError::NotImplemented(format!(
                "table {name} (only the coordinator has its rows)"
            )));
        }
        let named = NamedTable {
            catalog: name.catalog.to_string(),
            schema: name.schema.to_string(),
            table: name.table.to_string(),
        };
        let mut list = self.named.lock();
        if !list.contains(&named) {
            list.push(named.clone());
        }
        TableNode {
            kind: Some(TableKind::Named(named)),
        }
        .encode(buf)
        .map_err(|e| DataFusionError::Internal(e.to_string()))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, _buf: &mut Vec<u8>) -> Result<()> {
        let known = &self.shared.functions.scalar;
        self.check("scalar", known, node.name(), scalar_type(node))
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, _buf: &mut Vec<u8>) -> Result<()> {
        let known = &self.shared.functions.aggregate;
        self.check("aggregate", known, node.name(), aggregate_type(node))
    }

    fn try_encode_udwf(&self, node: &WindowUDF, _buf: &mut Vec<u8>) -> Result<()> {
        let known = &self.shared.functions.window;
        self.check("window", known, node.name(), window_type(node))
    }

    fn try_encode_higher_order_function(
        &self,
        node: &HigherOrderUDF,
        _buf: &mut Vec<u8>,
    ) -> Result<()> {
        let known = &self.shared.functions.higher_order;
        self.check("higher-order", known, node.name(), higher_order_type(node))
    }
}

// The wire shapes.

const SCALAR: u32 = 0;
const EXISTS: u32 = 1;
const IN: u32 = 2;

/// A correlated apply: its output schema and subqueries.
#[derive(Clone, PartialEq, Message)]
pub(super) struct ApplyNode {
    #[prost(message, optional, tag = "1")]
    schema: Option<protobuf::Schema>,
    #[prost(message, repeated, tag = "2")]
    subqueries: Vec<SubqueryNode>,
}

/// One subquery of an apply.
#[derive(Clone, PartialEq, Message)]
struct SubqueryNode {
    /// [`SCALAR`], [`EXISTS`] or [`IN`].
    #[prost(uint32, tag = "1")]
    kind: u32,
    #[prost(bool, tag = "2")]
    negated: bool,
    /// `IN`'s tested expression, over the apply's input.
    #[prost(message, optional, tag = "3")]
    expr: Option<protobuf::PhysicalExprNode>,
    /// `IN`'s tested type.
    #[prost(message, optional, tag = "4")]
    ty: Option<protobuf::ArrowType>,
    /// The input columns filling placeholders `$1..$n`, in order.
    #[prost(message, repeated, tag = "5")]
    bindings: Vec<BindingNode>,
    /// The logical plan, an encoded `protobuf::LogicalPlanNode`.
    #[prost(bytes = "vec", tag = "6")]
    plan: Vec<u8>,
    /// The tables the plan reads by name, resolved before it is decoded.
    #[prost(message, repeated, tag = "7")]
    tables: Vec<NamedTable>,
}

#[derive(Clone, PartialEq, Message)]
struct BindingNode {
    #[prost(uint64, tag = "1")]
    index: u64,
    #[prost(message, optional, tag = "2")]
    relation: Option<protobuf::TableReference>,
    #[prost(string, tag = "3")]
    name: String,
}

/// A table scan's provider (`CustomTableScanNode.custom_table_data`).
#[derive(Clone, PartialEq, Message)]
struct TableNode {
    #[prost(oneof = "TableKind", tags = "1")]
    kind: Option<TableKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum TableKind {
    #[prost(message, tag = "1")]
    Named(NamedTable),
}

/// A table of a mounted catalog, by its full name.
#[derive(Clone, PartialEq, Message)]
struct NamedTable {
    #[prost(string, tag = "1")]
    catalog: String,
    #[prost(string, tag = "2")]
    schema: String,
    #[prost(string, tag = "3")]
    table: String,
}

impl NamedTable {
    /// `catalog.schema.table`, for messages.
    fn name(&self) -> String {
        format!("{}.{}.{}", self.catalog, self.schema, self.table)
    }

    /// The resolved-table map's key.
    fn key(&self) -> (String, String, String) {
        (
            self.catalog.clone(),
            self.schema.clone(),
            self.table.clone(),
        )
    }
}
