//! What filters tell a Kafka scan: which partitions (`_partition_id`), which offsets
//! (`_partition_offset`) and from which timestamp (`_timestamp`) to read.
//!
//! Understood: `col <op> literal` (either order) with `=`, `<`, `<=`, `>`, `>=`; `col [NOT] BETWEEN a AND
//! b` (not negated); `col IN (list)` (not negated); `AND` and `OR` of those on the same column. For
//! `_timestamp` only lower bounds are used (`>=`, `>`, `=`, `BETWEEN`), and a cast of the column to
//! another timestamp unit (what type coercion writes). Everything else reads everything: the filters are
//! reported `Inexact`, so DataFusion applies them again above the scan and pruning only has to be
//! conservative.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::expr::{Between, InList};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

/// `_partition_id`
pub const PARTITION_ID: &str = "_partition_id";
/// `_partition_offset`
pub const PARTITION_OFFSET: &str = "_partition_offset";
/// `_timestamp`
pub const TIMESTAMP: &str = "_timestamp";

/// A set of integers as sorted, disjoint, inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(pub Vec<(i64, i64)>);

impl RangeSet {
    fn of(lo: i64, hi: i64) -> Self {
        if lo > hi {
            RangeSet(Vec::new())
        } else {
            RangeSet(vec![(lo, hi)])
        }
    }

    fn normalize(mut ranges: Vec<(i64, i64)>) -> Self {
        ranges.retain(|(lo, hi)| lo <= hi);
        ranges.sort();
        let mut out: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match out.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        RangeSet(out)
    }

    /// Values in both sets.
    pub fn intersect(&self, other: &RangeSet) -> RangeSet {
        let mut out = Vec::new();
        for &(a, b) in &self.0 {
            for &(c, d) in &other.0 {
                let (lo, hi) = (a.max(c), b.min(d));
                if lo <= hi {
                    out.push((lo, hi));
                }
            }
        }
        RangeSet::normalize(out)
    }

    fn union(&self, other: &RangeSet) -> RangeSet {
        RangeSet::normalize(self.0.iter().chain(other.0.iter()).copied().collect())
    }

    /// Whether `v` is in the set.
    pub fn contains(&self, v: i64) -> bool {
        self.0.iter().any(|(lo, hi)| (*lo..=*hi).contains(&v))
    }

    /// The set's ranges clipped to `[start, end)`, as half-open ranges.
    pub fn clip(&self, start: i64, end: i64) -> Vec<(i64, i64)> {
        self.0
            .iter()
            .filter_map(|&(lo, hi)| {
                let s = lo.max(start);
                let e = hi.saturating_add(1).min(end);
                (s < e).then_some((s, e))
            })
            .collect()
    }
}

/// Whether `expr` constrains `column` in a way [`int_ranges`] or [`timestamp_lower_bound`] uses.
pub fn is_pushable(expr: &Expr) -> bool {
    int_ranges(expr, PARTITION_ID).is_some()
        || int_ranges(expr, PARTITION_OFFSET).is_some()
        || timestamp_lower_bound(expr).is_some()
}

fn column_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Column(c) => Some(c.name.as_str()),
        _ => None,
    }
}

fn int_literal(expr: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = expr else {
        return None;
    };
    match v {
        ScalarValue::Int8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::Int64(Some(v)) => Some(*v),
        ScalarValue::UInt8(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt16(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt32(Some(v)) => Some(i64::from(*v)),
        ScalarValue::UInt64(Some(v)) => i64::try_from(*v).ok(),
        _ => None,
    }
}

/// The values of the integer column `column` (`_partition_id`, `_partition_offset`) that can satisfy
/// `expr`; `None` when `expr` says nothing usable about it.
pub fn int_ranges(expr: &Expr, column: &str) -> Option<RangeSet> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => match (int_ranges(left, column), int_ranges(right, column)) {
                (Some(a), Some(b)) => Some(a.intersect(&b)),
                (a, b) => a.or(b),
            },
            Operator::Or => Some(int_ranges(left, column)?.union(&int_ranges(right, column)?)),
            _ => {
                let (value, op) = if column_name(left) == Some(column) {
                    (int_literal(right)?, *op)
                } else if column_name(right) == Some(column) {
                    (int_literal(left)?, op.swap()?)
                } else {
                    return None;
                };
                match op {
                    Operator::Eq => Some(RangeSet::of(value, value)),
                    Operator::Lt => Some(RangeSet::of(i64::MIN, value.checked_sub(1)?)),
                    Operator::LtEq => Some(RangeSet::of(i64::MIN, value)),
                    Operator::Gt => Some(RangeSet::of(value.checked_add(1)?, i64::MAX)),
                    Operator::GtEq => Some(RangeSet::of(value, i64::MAX)),
                    _ => None,
                }
            }
        },
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if column_name(expr) == Some(column) => {
            Some(RangeSet::of(int_literal(low)?, int_literal(high)?))
        }
        Expr::InList(InList {
            expr,
            list,
            negated: false,
        }) if column_name(expr) == Some(column) => {
            let values = list
                .iter()
                .map(|e| int_literal(e).map(|v| (v, v)))
                .collect::<Option<Vec<_>>>()?;
            Some(RangeSet::normalize(values))
        }
        _ => None,
    }
}

/// A timestamp literal in milliseconds since the epoch (rounded down), if `expr` is one in UTC.
fn timestamp_literal_ms(expr: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = expr else {
        return None;
    };
    let (value, tz) = match v {
        ScalarValue::TimestampSecond(Some(v), tz) => (v.checked_mul(1000)?, tz),
        ScalarValue::TimestampMillisecond(Some(v), tz) => (*v, tz),
        ScalarValue::TimestampMicrosecond(Some(v), tz) => (v.div_euclid(1000), tz),
        ScalarValue::TimestampNanosecond(Some(v), tz) => (v.div_euclid(1_000_000), tz),
        _ => return None,
    };
    // A literal with a zone is an instant; without one it is UTC wall-clock time, like `_timestamp`.
    let _ = tz;
    Some(value)
}

/// Whether `expr` is the `_timestamp` column, possibly cast to another timestamp unit without a zone
/// (or to UTC), which keeps its instants.
fn is_timestamp_column(expr: &Expr) -> bool {
    match expr {
        Expr::Column(c) => c.name == TIMESTAMP,
        Expr::Cast(c) => {
            matches!(c.field.data_type(), DataType::Timestamp(_, tz) if tz.as_deref().is_none_or(is_utc))
                && is_timestamp_column(&c.expr)
        }
        _ => false,
    }
}

fn is_utc(tz: &str) -> bool {
    matches!(tz, "UTC" | "utc" | "+00:00" | "Z" | "+00" | "Etc/UTC")
}

/// The smallest `_timestamp` (ms since the epoch) a row satisfying `expr` can have, if `expr` bounds it.
pub fn timestamp_lower_bound(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => match (timestamp_lower_bound(left), timestamp_lower_bound(right)) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            },
            Operator::Or => Some(timestamp_lower_bound(left)?.min(timestamp_lower_bound(right)?)),
            _ => {
                let (value, op) = if is_timestamp_column(left) {
                    (timestamp_literal_ms(right)?, *op)
                } else if is_timestamp_column(right) {
                    (timestamp_literal_ms(left)?, op.swap()?)
                } else {
                    return None;
                };
                matches!(op, Operator::Eq | Operator::Gt | Operator::GtEq).then_some(value)
            }
        },
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            ..
        }) if is_timestamp_column(expr) => timestamp_literal_ms(low),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn ranges() {
        let e = col(PARTITION_ID)
            .eq(lit(1i64))
            .or(col(PARTITION_ID).eq(lit(3i64)));
        assert_eq!(
            int_ranges(&e, PARTITION_ID),
            Some(RangeSet(vec![(1, 1), (3, 3)]))
        );
        let e = col(PARTITION_OFFSET)
            .gt_eq(lit(2i64))
            .and(col(PARTITION_OFFSET).lt(lit(5i64)));
        let r = int_ranges(&e, PARTITION_OFFSET).unwrap();
        assert_eq!(r, RangeSet(vec![(2, 4)]));
        assert_eq!(r.clip(0, 10), vec![(2, 5)]);
        assert_eq!(r.clip(3, 4), vec![(3, 4)]);
        assert_eq!(int_ranges(&e, PARTITION_ID), None);
        let e = col(PARTITION_ID).in_list(vec![lit(2i64), lit(0i64)], false);
        assert_eq!(
            int_ranges(&e, PARTITION_ID),
            Some(RangeSet(vec![(0, 0), (2, 2)]))
        );
        let e = col(PARTITION_ID).not_eq(lit(1i64));
        assert_eq!(int_ranges(&e, PARTITION_ID), None);
        let e = col("x").eq(lit(1i64)).or(col(PARTITION_ID).eq(lit(1i64)));
        assert_eq!(int_ranges(&e, PARTITION_ID), None);
    }

    #[test]
    fn timestamps() {
        let t = |ms: i64| lit(ScalarValue::TimestampMillisecond(Some(ms), None));
        let e = col(TIMESTAMP)
            .gt_eq(t(5000))
            .and(col(TIMESTAMP).lt(t(9000)));
        assert_eq!(timestamp_lower_bound(&e), Some(5000));
        assert_eq!(timestamp_lower_bound(&col(TIMESTAMP).lt(t(9000))), None);
        assert!(is_pushable(&col(TIMESTAMP).gt(t(1))));
        assert!(!is_pushable(&col("x").gt(lit(1))));
    }
}
