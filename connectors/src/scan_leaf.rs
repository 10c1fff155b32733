//! What the scans of this crate share as DataFusion plan leaves: the [`ExecutionPlan`] methods of a
//! node without children or expressions ([`leaf_exec_methods!`]; [`unary_exec_methods!`] for the
//! write nodes' one child), and the stream of a reader that produces one partition's batches on
//! demand ([`batch_stream`]).
//!
//! [`ExecutionPlan`]: datafusion::physical_plan::ExecutionPlan

use std::future::Future;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

/// The [`ExecutionPlan`](datafusion::physical_plan::ExecutionPlan) methods of a leaf: no children,
/// no expressions, and replacing its children by none gives the same node. Written inside the
/// node's `impl ExecutionPlan` block.
macro_rules! leaf_exec_methods {
    () => {
        fn children(
            &self,
        ) -> Vec<&::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>> {
            vec![]
        }

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(
                &::std::sync::Arc<dyn ::datafusion::physical_expr::PhysicalExpr>,
            ) -> ::datafusion::common::Result<
                ::datafusion::common::tree_node::TreeNodeRecursion,
            >,
        ) -> ::datafusion::common::Result<::datafusion::common::tree_node::TreeNodeRecursion> {
            Ok(::datafusion::common::tree_node::TreeNodeRecursion::Continue)
        }

        fn replace_children(
            self: ::std::sync::Arc<Self>,
            children: Vec<::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>>,
            _options: ::datafusion::physical_plan::ReplaceChildrenOptions,
        ) -> ::datafusion::common::Result<
            ::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>,
        > {
            if !children.is_empty() {
                return ::datafusion::common::internal_err!(
                    "{} is a leaf and takes no children",
                    ::datafusion::physical_plan::ExecutionPlan::name(self.as_ref())
                );
            }
            Ok(self)
        }

        fn with_new_children(
            self: ::std::sync::Arc<Self>,
            children: Vec<::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>>,
        ) -> ::datafusion::common::Result<
            ::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>,
        > {
            self.replace_children(
                children,
                ::datafusion::physical_plan::ReplaceChildrenOptions::new(
                    ::datafusion::physical_plan::ChildrenPropertiesMode::Recompute,
                ),
            )
        }
    };
}
pub(crate) use leaf_exec_methods;

/// The [`ExecutionPlan`](datafusion::physical_plan::ExecutionPlan) methods of a node with one child
/// in its field `input` and no expressions (the write nodes): replacing the child rebuilds the node
/// with `$rebuild`, an expression of `$this` (the node) and `$input` (the new child). Written
/// inside the node's `impl ExecutionPlan` block.
macro_rules! unary_exec_methods {
    (|$this:ident, $input:ident| $rebuild:expr) => {
        fn children(
            &self,
        ) -> Vec<&::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>> {
            vec![&self.input]
        }

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(
                &::std::sync::Arc<dyn ::datafusion::physical_expr::PhysicalExpr>,
            ) -> ::datafusion::common::Result<
                ::datafusion::common::tree_node::TreeNodeRecursion,
            >,
        ) -> ::datafusion::common::Result<::datafusion::common::tree_node::TreeNodeRecursion> {
            Ok(::datafusion::common::tree_node::TreeNodeRecursion::Continue)
        }

        fn replace_children(
            self: ::std::sync::Arc<Self>,
            children: Vec<::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>>,
            _options: ::datafusion::physical_plan::ReplaceChildrenOptions,
        ) -> ::datafusion::common::Result<
            ::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>,
        > {
            let [$input] = <[_; 1]>::try_from(children).map_err(|_| {
                ::datafusion::common::DataFusionError::Internal(format!(
                    "{} takes one child",
                    ::datafusion::physical_plan::ExecutionPlan::name(self.as_ref())
                ))
            })?;
            let $this = self.as_ref();
            Ok(::std::sync::Arc::new($rebuild))
        }

        fn with_new_children(
            self: ::std::sync::Arc<Self>,
            children: Vec<::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>>,
        ) -> ::datafusion::common::Result<
            ::std::sync::Arc<dyn ::datafusion::physical_plan::ExecutionPlan>,
        > {
            self.replace_children(
                children,
                ::datafusion::physical_plan::ReplaceChildrenOptions::new(
                    ::datafusion::physical_plan::ChildrenPropertiesMode::Recompute,
                ),
            )
        }
    };
}
pub(crate) use unary_exec_methods;

/// A reader of one output partition that produces its batches on demand.
pub(crate) trait BatchReader: Send + 'static {
    /// The next batch, `None` at the end.
    fn next_batch(&mut self) -> impl Future<Output = Result<Option<RecordBatch>>> + Send;

    /// Called once `next_batch` failed: release what the reader holds (a connection, a consumer),
    /// so that it reads nothing more.
    fn stop(&mut self);
}

/// The stream of `reader`'s batches (each read when the consumer asks for it), as `schema`.
pub(crate) fn batch_stream<R: BatchReader>(
    schema: SchemaRef,
    reader: R,
) -> SendableRecordBatchStream {
    let stream = futures::stream::unfold(reader, |mut reader| async move {
        match reader.next_batch().await {
            Ok(Some(batch)) => Some((Ok(batch), reader)),
            Ok(None) => None,
            Err(e) => {
                reader.stop();
                Some((Err(e), reader))
            }
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream.boxed()))
}
