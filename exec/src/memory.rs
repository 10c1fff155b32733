//! Memory limits: one pool per node (`[engine] max_memory_mb`, DataFusion's greedy pool behind its
//! consumer tracking, so an error names the largest consumers) and, inside it, one pool per query on
//! that node (`[engine] query_max_memory_per_node_mb`, Trino's `query.max-memory-per-node`).
//!
//! Operators that can spill (sorts, hash aggregates, sort-merge joins) spill to the node's temporary
//! directory when their reservation is refused; the others fail the query with SQLSTATE 53200
//! (`out_of_memory`) naming the limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};

/// The node's runtime environment: `base` (object stores, disk manager, caches) with a pool of
/// `limit` bytes when set.
pub fn node_runtime(base: Arc<RuntimeEnv>, limit: Option<usize>) -> Result<Arc<RuntimeEnv>> {
    match limit {
        None => Ok(base),
        Some(bytes) => RuntimeEnvBuilder::from_runtime_env(&base)
            .with_memory_limit(bytes, 1.0)
            .build_arc(),
    }
}

/// The runtime environment of one query's tasks on this node: the node's, with a pool that admits
/// at most `limit` bytes for the query (and what the node pool admits).
pub fn query_runtime(
    node: &Arc<RuntimeEnv>,
    query: &str,
    limit: Option<usize>,
) -> Result<Arc<RuntimeEnv>> {
    let Some(limit) = limit else {
        return Ok(node.clone());
    };
    let pool = Arc::new(QueryMemoryPool {
        node: node.memory_pool.clone(),
        query: query.to_string(),
        limit,
        used: AtomicUsize::new(0),
    });
    RuntimeEnvBuilder::from_runtime_env(node)
        .with_memory_pool(pool)
        .build_arc()
}

/// A query's share of a node pool: every reservation also goes to the node pool.
#[derive(Debug)]
struct QueryMemoryPool {
    node: Arc<dyn MemoryPool>,
    query: String,
    limit: usize,
    used: AtomicUsize,
}

impl std::fmt::Display for QueryMemoryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "query {} pool: {} of {} bytes reserved",
            self.query,
            self.used.load(Ordering::Relaxed),
            self.limit
        )
    }
}

impl MemoryPool for QueryMemoryPool {
    fn name(&self) -> &str {
        "query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.node.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.node.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.node.grow(reservation, additional)
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.node.shrink(reservation, shrink)
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let admitted = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used + additional <= self.limit).then_some(used + additional)
            });
        if admitted.is_err() {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "query {} exceeded its memory limit of {} MB on this node \
                 ([engine] query_max_memory_per_node_mb) while {} asked for {} more bytes",
                self.query,
                self.limit >> 20,
                reservation.consumer().name(),
                additional
            )));
        }
        if let Err(e) = self.node.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_pool_refuses_past_its_limit_and_gives_back_to_the_node() {
        let node = node_runtime(Arc::new(RuntimeEnv::default()), Some(10 << 20)).unwrap();
        let q = query_runtime(&node, "q1", Some(1 << 20)).unwrap();
        let r = MemoryConsumer::new("HashJoin").register(&q.memory_pool);
        r.try_grow(512 << 10).unwrap();
        assert_eq!(node.memory_pool.reserved(), 512 << 10);
        let err = r.try_grow(1 << 20).unwrap_err().to_string();
        assert!(err.contains("q1") && err.contains("1 MB"), "{err}");
        drop(r);
        assert_eq!(node.memory_pool.reserved(), 0);
        assert_eq!(q.memory_pool.reserved(), 0);
    }
}
