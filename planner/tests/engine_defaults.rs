//! The `[engine]` defaults follow the node's cores, and `TRIBUTARY_CORES` overrides the count (its
//! own test binary: the variable is process-wide).

use tributary_planner::config::{CORES_ENV, EngineConfig, node_cores};

#[test]
fn engine_defaults_follow_the_cores() {
    let two = EngineConfig::for_cores(2);
    assert_eq!((two.workers, two.hash_partitions), (2, 4));
    let sixteen = EngineConfig::for_cores(16);
    assert_eq!((sixteen.workers, sixteen.hash_partitions), (4, 16));
    let many = EngineConfig::for_cores(1000);
    assert_eq!((many.workers, many.hash_partitions), (250, 256));

    // SAFETY: the only test of this binary; nothing else reads the environment meanwhile.
    unsafe { std::env::set_var(CORES_ENV, "16") };
    assert_eq!(node_cores(), 16);
    assert_eq!(EngineConfig::default().hash_partitions, 16);
    unsafe { std::env::set_var(CORES_ENV, "not a number") };
    assert_eq!(
        node_cores(),
        std::thread::available_parallelism().map_or(2, |n| n.get())
    );
}
