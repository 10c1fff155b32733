//! Plan fragments on the wire: `datafusion-proto` plus an extension codec for Tributary's own operators.
//!
//! A stage's plan goes to the worker that runs its tasks as one protobuf `PhysicalPlanNode`. DataFusion's
//! operators serialize natively, lake scans included (a `DataSourceExec` over Parquet, CSV or JSON files
//! under a `lake://NAME/` object store URL, which the worker's `RuntimeEnv` registers as the
//! coordinator's does), and so do in-memory sources with their rows (`VALUES`, and the snapshot a
//! `system.runtime.*` scan took at planning time). Tributary's own nodes travel as extension nodes:
//! - a connector scan (tpch, postgres, mysql, kafka) as its [`ScanSpec`] (JSON: splits, remote SQL,
//!   projection, limit) plus its output schema; the worker rebuilds it through the connector of the same
//!   catalog in its own [`CatalogRegistry`], loaded from the same `etc/catalog/*.toml` (as in Trino,
//!   every node mounts the catalogs), so pools and Kafka clients are the worker's own;
//! - a connector's write node (a lake table writer, `LakeWriteExec`) as its spec (JSON: catalog,
//!   table directory, partition columns, the metadata a `CREATE TABLE AS` publishes) over its one
//!   input, encoded as the extension node's input; the worker rebuilds it through its own connector
//!   of that catalog ([`tributary_connectors::decode_write`]);
//! - an [`ExchangeReadExec`] as its producer stage, task count, read mode and the plan properties of the
//!   node it stands for (schema, partitioning, orderings, equivalences, constants; not table
//!   constraints, which no Tributary connector declares);
//! - a correlated apply (`tributary_planner::apply::CorrelatedApplyExec`) as its subqueries' logical
//!   plans over its one input (see [`apply`]);
//! - a `ScalarSubqueryExpr` whose value the engine already computed (see [`crate::subquery`]) as that
//!   value; the worker gets an expression holding it, displayed the same way.
//!
//! Anything else has no worker-side meaning and is refused (see [`PlanCodec::encode`]), so the
//! scheduler keeps that stage on the coordinator: operators datafusion-proto cannot serialize
//! (`information_schema` listings, which stream catalog state; recursive queries; ...) and functions
//! a plain worker session does not have (the pg_catalog emulation functions the server registers on
//! its sessions).

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::physical_planning_context::{ScalarSubqueryResults, SubqueryIndex};
use datafusion::logical_expr::{AggregateUDF, ColumnarValue, HigherOrderUDF, ScalarUDF, WindowUDF};
use datafusion::physical_expr::scalar_subquery::ScalarSubqueryExpr;
use datafusion::physical_expr::{AcrossPartitions, ConstExpr, EquivalenceProperties, PhysicalExpr};
use datafusion::physical_expr_common::physical_expr::proto_decode::PhysicalExprDecodeCtx;
use datafusion::physical_expr_common::physical_expr::proto_encode::PhysicalExprEncodeCtx;
use datafusion::physical_plan::execution_plan::{
    Boundedness, EmissionType, EvaluationType, SchedulingType,
};
use datafusion::physical_plan::scalar_subquery::ScalarSubqueryExec;
use datafusion::physical_plan::{ExecutionPlan, PlanProperties};
use datafusion_proto::physical_plan::from_proto::{
    parse_physical_expr_with_converter, parse_physical_sort_exprs, parse_protobuf_partitioning,
};
use datafusion_proto::physical_plan::to_proto::{
    serialize_partitioning, serialize_physical_expr_with_converter, serialize_physical_sort_exprs,
};
use datafusion_proto::physical_plan::{
    PhysicalExtensionCodec, PhysicalPlanDecodeContext, PhysicalPlanNodeExt,
    PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf;
use parking_lot::Mutex;
use prost::Message;
use tributary_connectors::{ScanSpec, decode_scan, decode_write, encode_scan, encode_write};
use tributary_exchange::{ExchangeReadExec, ReadMode};
use tributary_planner::CatalogRegistry;
use tributary_planner::apply::CorrelatedApplyExec;

mod apply;

/// Encodes and decodes physical plan fragments. One per process, built from the catalog registry, which
/// coordinator and workers load from the same `etc/catalog/*.toml`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PlanCodec {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    registry: CatalogRegistry,
    functions: WorkerFunctions,
}

/// The functions of a plain worker session (every name they are registered under) and the Rust type
/// of each one's implementation.
#[derive(Debug, Default)]
struct WorkerFunctions {
    scalar: HashMap<String, TypeId>,
    aggregate: HashMap<String, TypeId>,
    window: HashMap<String, TypeId>,
    higher_order: HashMap<String, TypeId>,
}

impl WorkerFunctions {
    /// The functions of a session from `tributary_planner::session::new_session_context`.
    fn of_plain_session(registry: &CatalogRegistry) -> Self {
        let ctx = tributary_planner::session::new_session_context(
            registry,
            Arc::new(RuntimeEnv::default()),
            "system",
            "runtime",
            1,
        );
        let state = ctx.state();
        fn types<T>(
            functions: &HashMap<String, Arc<T>>,
            type_of: fn(&T) -> TypeId,
        ) -> HashMap<String, TypeId> {
            functions
                .iter()
                .map(|(name, f)| (name.clone(), type_of(f)))
                .collect()
        }
        Self {
            scalar: types(state.scalar_functions(), scalar_type),
            aggregate: types(state.aggregate_functions(), aggregate_type),
            window: types(state.window_functions(), window_type),
            higher_order: types(state.higher_order_functions(), higher_order_type),
        }
    }
}

fn scalar_type(f: &ScalarUDF) -> TypeId {
    let inner: &dyn Any = f.inner().as_ref();
    inner.type_id()
}

fn aggregate_type(f: &AggregateUDF) -> TypeId {
    let inner: &dyn Any = f.inner().as_ref();
    inner.type_id()
}

fn window_type(f: &WindowUDF) -> TypeId {
    let inner: &dyn Any = f.inner().as_ref();
    inner.type_id()
}

fn higher_order_type(f: &HigherOrderUDF) -> TypeId {
    let inner: &dyn Any = f.inner().as_ref();
    inner.type_id()
}

impl PlanCodec {
    /// The catalogs scans and writes are rebuilt through.
    pub fn registry(&self) -> &CatalogRegistry {
        &self.shared.registry
    }

    /// A codec rebuilding scans through `registry`'s connectors. Computes once which functions a plain
    /// worker session has, for [`PlanCodec::encode`] to refuse plans using any other.
    pub fn new(registry: CatalogRegistry) -> Self {
        let functions = WorkerFunctions::of_plain_session(&registry);
        Self {
            shared: Arc::new(Shared {
                registry,
                functions,
            }),
        }
    }

    /// Serializes `plan` (a stage fragment, or any physical plan) as a protobuf `PhysicalPlanNode`.
    ///
    /// Errors: `DataFusionError::NotImplemented("... cannot run on a worker: <node>")` for a plan that
    /// must stay on the coordinator: it holds an operator or expression that has no serialized form (an
    /// `information_schema` listing, a recursive query, a scalar subquery not yet computed
    /// outside its `ScalarSubqueryExec`), or uses a scalar, aggregate, window or higher-order function
    /// that a plain worker session does not have under that name with the same implementation.
    pub fn encode(&self, plan: &Arc<dyn ExecutionPlan>) -> Result<Bytes> {
        let codec = TributaryCodec::new(Arc::clone(&self.shared));
        let converter = Converter::new(&codec);
        match converter.execution_plan_to_proto(plan, &codec) {
            Ok(node) => Ok(Bytes::from(node.encode_to_vec())),
            // datafusion-proto wraps what the codec returns into an internal error: report the refusal.
            Err(e) => Err(codec.refusal.lock().take().unwrap_or(e)),
        }
    }

    /// Rebuilds a plan encoded by [`PlanCodec::encode`] (in this or another process with the same
    /// catalogs). `ctx` is the receiving side's task context: its session config, its functions, and a
    /// runtime env with the catalogs' object stores registered.
    ///
    /// Errors: bytes that are not such a plan, a scan of a catalog not mounted here (or mounted as
    /// another kind), a function `ctx` does not have.
    pub fn decode(&self, bytes: &[u8], ctx: &TaskContext) -> Result<Arc<dyn ExecutionPlan>> {
        let node = protobuf::PhysicalPlanNode::decode(bytes)
            .map_err(|e| DataFusionError::Internal(format!("not an encoded plan fragment: {e}")))?;
        let codec = TributaryCodec::new(Arc::clone(&self.shared));
        node.try_into_physical_plan_with_converter(ctx, &codec, &Converter::new(&codec))
    }
}

/// The extension codec of one encode or decode call: Tributary's nodes, plus the first refusal seen,
/// which [`PlanCodec::encode`] returns as is (datafusion-proto wraps codec errors).
#[derive(Debug)]
struct TributaryCodec {
    shared: Arc<Shared>,
    refusal: Mutex<Option<DataFusionError>>,
}

impl TributaryCodec {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            refusal: Mutex::new(None),
        }
    }

    /// Records (the first) and returns the error saying `what` keeps the plan on the coordinator.
    fn refuse(&self, what: String) -> DataFusionError {
        let error =
            || DataFusionError::NotImplemented(format!("this plan cannot run on a worker: {what}"));
        self.refusal.lock().get_or_insert_with(error);
        error()
    }

    /// Ok if a plain worker session has the function `name` with implementation type `type_id`.
    fn check_function(
        &self,
        kind: &str,
        known: &HashMap<String, TypeId>,
        name: &str,
        type_id: TypeId,
    ) -> Result<()> {
        if worker_has(known, name, type_id) {
            Ok(())
        } else {
            Err(self.refuse(no_such_function(kind, name)))
        }
    }
}

/// Whether `known` (a plain worker session's functions of one kind) has `name` with implementation
/// type `type_id`.
fn worker_has(known: &HashMap<String, TypeId>, name: &str, type_id: TypeId) -> bool {
    known.get(name) == Some(&type_id)
}

/// Why a plan using function `name` of `kind` stays on the coordinator.
fn no_such_function(kind: &str, name: &str) -> String {
    format!("{kind} function {name} (a worker session has no such function)")
}

impl PhysicalExtensionCodec for TributaryCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let envelope = NodeEnvelope::decode(buf)
            .map_err(|e| DataFusionError::Internal(format!("bad Tributary plan node: {e}")))?;
        match envelope.node {
            Some(NodeKind::Scan(scan)) => {
                let spec: ScanSpec = serde_json::from_str(&scan.spec).map_err(|e| {
                    DataFusionError::Internal(format!("bad Tributary scan node: {e}"))
                })?;
                let schema = decode_schema(scan.schema.as_ref())?;
                // A spec without a catalog (tpch) is rebuilt by any connector of its kind.
                let connector = match spec.catalog.as_deref() {
                    Some(name) => self.shared.registry.get(name),
                    None => self
                        .shared
                        .registry
                        .connectors()
                        .into_iter()
                        .map(|(_, c)| c)
                        .find(|c| c.kind() == spec.kind),
                };
                decode_scan(&spec, connector.as_deref(), schema)
            }
            Some(NodeKind::ExchangeRead(read)) => {
                let decode_ctx = PhysicalPlanDecodeContext::new(ctx, self);
                Ok(Arc::new(decode_exchange_read(
                    &read,
                    &decode_ctx,
                    proto_converter,
                )?))
            }
            Some(NodeKind::Apply(node)) => {
                let [input] = inputs else {
                    return Err(DataFusionError::Internal(
                        "bad Tributary apply node: it has one input".into(),
                    ));
                };
                let decode_ctx = PhysicalPlanDecodeContext::new(ctx, self);
                apply::decode(
                    &self.shared,
                    &node,
                    Arc::clone(input),
                    ctx,
                    proto_converter,
                    &decode_ctx,
                )
            }
            Some(NodeKind::Write(write)) => {
                let spec: ScanSpec = serde_json::from_str(&write.spec).map_err(|e| {
                    DataFusionError::Internal(format!("bad Tributary write node: {e}"))
                })?;
                let [input] = inputs else {
                    return Err(DataFusionError::Internal(
                        "bad Tributary write node: it has one input".into(),
                    ));
                };
                let connector = spec
                    .catalog
                    .as_deref()
                    .and_then(|name| self.shared.registry.get(name));
                decode_write(&spec, connector.as_deref(), Arc::clone(input))
            }
            None => Err(DataFusionError::Internal(
                "bad Tributary plan node: empty".into(),
            )),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let kind = if let Some(spec) = encode_scan(node.as_ref()) {
            NodeKind::Scan(ScanNode {
                spec: serde_json::to_string(&spec)
                    .map_err(|e| DataFusionError::Internal(e.to_string()))?,
                schema: Some(node.schema().as_ref().try_into()?),
            })
        } else if let Some(read) = node.downcast_ref::<ExchangeReadExec>() {
            NodeKind::ExchangeRead(encode_exchange_read(read, self, proto_converter)?)
        } else if let Some(applied) = node.downcast_ref::<CorrelatedApplyExec>() {
            NodeKind::Apply(apply::encode(self, applied, proto_converter)?)
        } else if let Some(spec) = encode_write(node.as_ref()) {
            NodeKind::Write(WriteNode {
                spec: serde_json::to_string(&spec)
                    .map_err(|e| DataFusionError::Internal(e.to_string()))?,
            })
        } else {
            return Err(self.refuse(node.name().to_string()));
        };
        NodeEnvelope { node: Some(kind) }
            .encode(buf)
            .map_err(|e| DataFusionError::Internal(e.to_string()))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, _buf: &mut Vec<u8>) -> Result<()> {
        let known = &self.shared.functions.scalar;
        self.check_function("scalar", known, node.name(), scalar_type(node))
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, _buf: &mut Vec<u8>) -> Result<()> {
        let known = &self.shared.functions.aggregate;
        self.check_function("aggregate", known, node.name(), aggregate_type(node))
    }

    fn try_encode_udwf(&self, node: &WindowUDF, _buf: &mut Vec<u8>) -> Result<()> {
        let known = &self.shared.functions.window;
        self.check_function("window", known, node.name(), window_type(node))
    }

    fn try_encode_higher_order_function(
        &self,
        node: &HigherOrderUDF,
        _buf: &mut Vec<u8>,
    ) -> Result<()> {
        let known = &self.shared.functions.higher_order;
        self.check_function("higher-order", known, node.name(), higher_order_type(node))
    }

    fn try_encode_expr(
        &self,
        node: &Arc<dyn PhysicalExpr>,
        _buf: &mut Vec<u8>,
        _ctx: &PhysicalExprEncodeCtx<'_>,
    ) -> Result<()> {
        Err(self.refuse(format!("expression {node}")))
    }

    fn try_decode_expr(
        &self,
        buf: &[u8],
        _inputs: &[Arc<dyn PhysicalExpr>],
        _ctx: &PhysicalExprDecodeCtx<'_>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let node = ResolvedSubqueryNode::decode(buf)
            .map_err(|e| DataFusionError::Internal(format!("bad Tributary expression: {e}")))?;
        let value = ScalarValue::try_from(required(node.value.as_ref(), "value")?)?;
        let data_type = required(node.data_type.as_ref(), "data_type")?.try_into()?;
        let results = ScalarSubqueryResults::new(1);
        results.set(SubqueryIndex::new(0), value)?;
        Ok(Arc::new(ScalarSubqueryExpr::new(
            data_type,
            node.nullable,
            SubqueryIndex::new(0),
            results,
        )))
    }
}

/// datafusion-proto's default conversion, except for scalar subqueries: one whose value is known
/// travels as that value, and one still waiting for its `ScalarSubqueryExec` is refused outside that
/// node (DataFusion's own form of it only decodes inside the node).
struct Converter<'a> {
    codec: &'a TributaryCodec,
    /// How many `ScalarSubqueryExec`s the node being encoded is inside of.
    subquery_depth: Cell<usize>,
}

impl<'a> Converter<'a> {
    fn new(codec: &'a TributaryCodec) -> Self {
        Self {
            codec,
            subquery_depth: Cell::new(0),
        }
    }
}

impl PhysicalProtoConverterExtension for Converter<'_> {
    fn proto_to_execution_plan(
        &self,
        proto: &protobuf::PhysicalPlanNode,
        ctx: &PhysicalPlanDecodeContext<'_>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        proto.try_into_physical_plan_with_context(ctx, self)
    }

    fn execution_plan_to_proto(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        codec: &dyn PhysicalExtensionCodec,
    ) -> Result<protobuf::PhysicalPlanNode> {
        let in_subquery_exec = plan.downcast_ref::<ScalarSubqueryExec>().is_some();
        let depth = self.subquery_depth.get();
        self.subquery_depth
            .set(depth + usize::from(in_subquery_exec));
        let node = protobuf::PhysicalPlanNode::try_from_physical_plan_with_converter(
            Arc::clone(plan),
            codec,
            self,
        );
        self.subquery_depth.set(depth);
        node
    }

    fn proto_to_physical_expr(
        &self,
        proto: &protobuf::PhysicalExprNode,
        input_schema: &Schema,
        ctx: &PhysicalPlanDecodeContext<'_>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        parse_physical_expr_with_converter(proto, input_schema, ctx, self)
    }

    fn physical_expr_to_proto(
        &self,
        expr: &Arc<dyn PhysicalExpr>,
        codec: &dyn PhysicalExtensionCodec,
    ) -> Result<protobuf::PhysicalExprNode> {
        if let Some(subquery) = expr.downcast_ref::<ScalarSubqueryExpr>() {
            if let Some(node) = encode_resolved_subquery(subquery)? {
                return Ok(node);
            }
            if self.subquery_depth.get() == 0 {
                return Err(self
                    .codec
                    .refuse(format!("{subquery} outside its ScalarSubqueryExec")));
            }
        }
        serialize_physical_expr_with_converter(expr, codec, self)
    }
}

/// A scalar subquery's value as an extension expression, `None` while it is not computed yet.
fn encode_resolved_subquery(
    subquery: &ScalarSubqueryExpr,
) -> Result<Option<protobuf::PhysicalExprNode>> {
    let no_input = RecordBatch::new_empty(Arc::new(Schema::empty()));
    let Ok(ColumnarValue::Scalar(value)) = subquery.evaluate(&no_input) else {
        return Ok(None);
    };
    let field = subquery.return_field(&Schema::empty())?;
    let node = ResolvedSubqueryNode {
        value: Some((&value).try_into()?),
        data_type: Some(field.data_type().try_into()?),
        nullable: field.is_nullable(),
    };
    Ok(Some(protobuf::PhysicalExprNode {
        expr_id: None,
        expr_type: Some(protobuf::physical_expr_node::ExprType::Extension(
            protobuf::PhysicalExtensionExprNode {
                expr: node.encode_to_vec(),
                inputs: Vec::new(),
            },
        )),
    }))
}

fn encode_exchange_read(
    read: &ExchangeReadExec,
    codec: &dyn PhysicalExtensionCodec,
    converter: &dyn PhysicalProtoConverterExtension,
) -> Result<ExchangeReadNode> {
    let props = read.properties();
    let eq = &props.eq_properties;
    let expr = |e: &Arc<dyn PhysicalExpr>| converter.physical_expr_to_proto(e, codec);
    let orderings = eq
        .oeq_class()
        .iter()
        .map(|ordering| {
            Ok(protobuf::PhysicalSortExprNodeCollection {
                physical_sort_expr_nodes: serialize_physical_sort_exprs(
                    ordering.iter().cloned(),
                    codec,
                    converter,
                )?,
            })
        })
        .collect::<Result<_>>()?;
    let equivalences = eq
        .eq_group()
        .iter()
        .map(|class| {
            Ok(ExprList {
                exprs: class.iter().map(expr).collect::<Result<_>>()?,
            })
        })
        .collect::<Result<_>>()?;
    let constants = eq
        .constants()
        .iter()
        .map(|c| {
            let (uniform, value) = match &c.across_partitions {
                AcrossPartitions::Heterogeneous => (false, None),
                AcrossPartitions::Uniform(value) => {
                    (true, value.as_ref().map(|v| v.try_into()).transpose()?)
                }
            };
            Ok(ConstantNode {
                expr: Some(expr(&c.expr)?),
                uniform,
                value,
            })
        })
        .collect::<Result<_>>()?;
    let (unbounded, requires_infinite_memory) = match props.boundedness {
        Boundedness::Bounded => (false, false),
        Boundedness::Unbounded {
            requires_infinite_memory,
        } => (true, requires_infinite_memory),
    };
    Ok(ExchangeReadNode {
        stage: read.stage() as u64,
        producer_tasks: read.producer_tasks() as u64,
        per_task: read.mode() == ReadMode::PerTask,
        schema: Some(read.schema().as_ref().try_into()?),
        partitioning: Some(serialize_partitioning(
            &props.partitioning,
            codec,
            converter,
        )?),
        orderings,
        equivalences,
        constants,
        emission: match props.emission_type {
            EmissionType::Incremental => 0,
            EmissionType::Final => 1,
            EmissionType::Both => 2,
        },
        unbounded,
        requires_infinite_memory,
        eager: props.evaluation_type == EvaluationType::Eager,
        cooperative: props.scheduling_type == SchedulingType::Cooperative,
    })
}

fn decode_exchange_read(
    node: &ExchangeReadNode,
    ctx: &PhysicalPlanDecodeContext<'_>,
    converter: &dyn PhysicalProtoConverterExtension,
) -> Result<ExchangeReadExec> {
    let schema = decode_schema(node.schema.as_ref())?;
    let expr = |e: &protobuf::PhysicalExprNode| converter.proto_to_physical_expr(e, &schema, ctx);
    let orderings = node
        .orderings
        .iter()
        .map(|o| parse_physical_sort_exprs(&o.physical_sort_expr_nodes, ctx, &schema, converter))
        .collect::<Result<Vec<_>>>()?;
    let mut eq = EquivalenceProperties::new_with_orderings(Arc::clone(&schema), orderings);
    for class in &node.equivalences {
        let exprs = class.exprs.iter().map(expr).collect::<Result<Vec<_>>>()?;
        if let Some((first, rest)) = exprs.split_first() {
            for other in rest {
                eq.add_equal_conditions(Arc::clone(first), Arc::clone(other))?;
            }
        }
    }
    let constants = node
        .constants
        .iter()
        .map(|c| {
            let across = if c.uniform {
                AcrossPartitions::Uniform(c.value.as_ref().map(ScalarValue::try_from).transpose()?)
            } else {
                AcrossPartitions::Heterogeneous
            };
            Ok(ConstExpr::new(
                expr(required(c.expr.as_ref(), "constant")?)?,
                across,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    eq.add_constants(constants)?;
    let partitioning =
        parse_protobuf_partitioning(node.partitioning.as_ref(), ctx, &schema, converter)?
            .ok_or_else(|| {
                DataFusionError::Internal("exchange read without partitioning".into())
            })?;
    let emission = match node.emission {
        0 => EmissionType::Incremental,
        1 => EmissionType::Final,
        _ => EmissionType::Both,
    };
    let boundedness = if node.unbounded {
        Boundedness::Unbounded {
            requires_infinite_memory: node.requires_infinite_memory,
        }
    } else {
        Boundedness::Bounded
    };
    let properties = PlanProperties::new(eq, partitioning, emission, boundedness)
        .with_evaluation_type(if node.eager {
            EvaluationType::Eager
        } else {
            EvaluationType::Lazy
        })
        .with_scheduling_type(if node.cooperative {
            SchedulingType::Cooperative
        } else {
            SchedulingType::NonCooperative
        });
    let mode = if node.per_task {
        ReadMode::PerTask
    } else {
        ReadMode::Gather
    };
    Ok(ExchangeReadExec::new(
        usize::try_from(node.stage).map_err(|e| DataFusionError::Internal(e.to_string()))?,
        usize::try_from(node.producer_tasks)
            .map_err(|e| DataFusionError::Internal(e.to_string()))?,
        mode,
        Arc::new(properties),
    ))
}

fn decode_schema(schema: Option<&protobuf::Schema>) -> Result<SchemaRef> {
    Ok(Arc::new(required(schema, "schema")?.try_into()?))
}

fn required<'a, T>(field: Option<&'a T>, name: &str) -> Result<&'a T> {
    field.ok_or_else(|| DataFusionError::Internal(format!("Tributary plan node without {name}")))
}

// The wire shapes of Tributary's nodes: the payloads of datafusion-proto's extension nodes.

/// A Tributary plan node (`PhysicalExtensionNode.node`).
#[derive(Clone, PartialEq, Message)]
struct NodeEnvelope {
    #[prost(oneof = "NodeKind", tags = "1, 2, 3, 4")]
    node: Option<NodeKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum NodeKind {
    #[prost(message, tag = "1")]
    Scan(ScanNode),
    #[prost(message, tag = "2")]
    ExchangeRead(ExchangeReadNode),
    #[prost(message, tag = "3")]
    Write(WriteNode),
    #[prost(message, tag = "4")]
    Apply(apply::ApplyNode),
}

/// A connector's write node over its one input (the extension node's input): its spec as JSON.
#[derive(Clone, PartialEq, Message)]
struct WriteNode {
    #[prost(string, tag = "1")]
    spec: String,
}

/// A connector scan: its [`ScanSpec`] as JSON and its output schema.
#[derive(Clone, PartialEq, Message)]
struct ScanNode {
    #[prost(string, tag = "1")]
    spec: String,
    #[prost(message, optional, tag = "2")]
    schema: Option<protobuf::Schema>,
}

/// An [`ExchangeReadExec`] and the plan properties of the node it replaced.
#[derive(Clone, PartialEq, Message)]
struct ExchangeReadNode {
    #[prost(uint64, tag = "1")]
    stage: u64,
    #[prost(uint64, tag = "2")]
    producer_tasks: u64,
    /// [`ReadMode::PerTask`], else [`ReadMode::Gather`].
    #[prost(bool, tag = "3")]
    per_task: bool,
    #[prost(message, optional, tag = "4")]
    schema: Option<protobuf::Schema>,
    #[prost(message, optional, tag = "5")]
    partitioning: Option<protobuf::Partitioning>,
    #[prost(message, repeated, tag = "6")]
    orderings: Vec<protobuf::PhysicalSortExprNodeCollection>,
    /// Equivalence classes (expressions known to be equal).
    #[prost(message, repeated, tag = "7")]
    equivalences: Vec<ExprList>,
    #[prost(message, repeated, tag = "8")]
    constants: Vec<ConstantNode>,
    /// 0 incremental, 1 final, 2 both.
    #[prost(uint32, tag = "10")]
    emission: u32,
    #[prost(bool, tag = "11")]
    unbounded: bool,
    #[prost(bool, tag = "12")]
    requires_infinite_memory: bool,
    #[prost(bool, tag = "13")]
    eager: bool,
    #[prost(bool, tag = "14")]
    cooperative: bool,
}

#[derive(Clone, PartialEq, Message)]
struct ExprList {
    #[prost(message, repeated, tag = "1")]
    exprs: Vec<protobuf::PhysicalExprNode>,
}

/// An expression known to be constant; `value` when it is the same in every partition and known.
#[derive(Clone, PartialEq, Message)]
struct ConstantNode {
    #[prost(message, optional, tag = "1")]
    expr: Option<protobuf::PhysicalExprNode>,
    #[prost(bool, tag = "2")]
    uniform: bool,
    #[prost(message, optional, tag = "3")]
    value: Option<protobuf::ScalarValue>,
}

/// A computed scalar subquery (`PhysicalExtensionExprNode.expr`).
#[derive(Clone, PartialEq, Message)]
struct ResolvedSubqueryNode {
    #[prost(message, optional, tag = "1")]
    value: Option<protobuf::ScalarValue>,
    #[prost(message, optional, tag = "2")]
    data_type: Option<protobuf::ArrowType>,
    #[prost(bool, tag = "3")]
    nullable: bool,
}
