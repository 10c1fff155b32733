//! The eight TPC-H tables: their Arrow schemas (as `tpchgen-arrow` produces them), row counts and split
//! sizing, and the generator that produces one split's rows.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

/// Target number of rows in one split (one generator part, one scan partition).
pub const TARGET_SPLIT_ROWS: u64 = 50_000;

/// Upper bound on the number of splits of one table, whatever the scale factor.
pub const MAX_SPLITS: u64 = 4096;

/// Rows of `partsupp` per row of `part` (TPC-H spec 4.2.5: each part has 4 suppliers).
const SUPPLIERS_PER_PART: u64 = 4;

/// Rows of `lineitem` per row of `orders`, on average (1 to 7 lines per order).
const LINES_PER_ORDER_ESTIMATE: u64 = 4;

/// A lazy, blocking iterator over the batches of one split.
pub(crate) type BatchIter = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

/// One of the eight TPC-H tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TpchTable {
    /// `nation`: 25 rows at every scale.
    Nation,
    /// `region`: 5 rows at every scale.
    Region,
    /// `part`: 200,000 rows per unit of scale.
    Part,
    /// `supplier`: 10,000 rows per unit of scale.
    Supplier,
    /// `partsupp`: 800,000 rows per unit of scale (4 per part).
    PartSupp,
    /// `customer`: 150,000 rows per unit of scale.
    Customer,
    /// `orders`: 1,500,000 rows per unit of scale.
    Orders,
    /// `lineitem`: about 6,000,000 rows per unit of scale (1 to 7 per order).
    LineItem,
}

impl TpchTable {
    /// All tables, in the order `SHOW TABLES` lists them.
    pub const ALL: [TpchTable; 8] = [
        TpchTable::Customer,
        TpchTable::LineItem,
        TpchTable::Nation,
        TpchTable::Orders,
        TpchTable::Part,
        TpchTable::PartSupp,
        TpchTable::Region,
        TpchTable::Supplier,
    ];

    /// The table's SQL name (lower case, as in Trino's tpch connector).
    pub fn name(self) -> &'static str {
        match self {
            TpchTable::Nation => "nation",
            TpchTable::Region => "region",
            TpchTable::Part => "part",
            TpchTable::Supplier => "supplier",
            TpchTable::PartSupp => "partsupp",
            TpchTable::Customer => "customer",
            TpchTable::Orders => "orders",
            TpchTable::LineItem => "lineitem",
        }
    }

    /// The table named `name`, if any (exact, lower-case match).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The full Arrow schema: TPC-H column names with their prefixes (`l_orderkey`), keys as Int64,
    /// money as Decimal128(15, 2), dates as Date32, text as Utf8View.
    pub fn schema(self) -> SchemaRef {
        match self {
            TpchTable::Nation => NationArrow::schema_ref(),
            TpchTable::Region => RegionArrow::schema_ref(),
            TpchTable::Part => PartArrow::schema_ref(),
            TpchTable::Supplier => SupplierArrow::schema_ref(),
            TpchTable::PartSupp => PartSuppArrow::schema_ref(),
            TpchTable::Customer => CustomerArrow::schema_ref(),
            TpchTable::Orders => OrderArrow::schema_ref(),
            TpchTable::LineItem => LineItemArrow::schema_ref(),
        }
    }

    /// Whether the table has the same rows at every scale factor (`nation`, `region`).
    pub fn is_scale_independent(self) -> bool {
        matches!(self, TpchTable::Nation | TpchTable::Region)
    }

    /// Number of rows generator part `part` (1-based) of `part_count` yields at `scale_factor`, and
    /// whether that number is exact. Only `lineitem` is an estimate (4 lines per order).
    pub fn split_row_count(self, scale_factor: f64, part: i32, part_count: i32) -> (u64, bool) {
        let rows = |n: i64| u64::try_from(n).unwrap_or(0);
        match self {
            TpchTable::Nation => (if part == 1 { 25 } else { 0 }, true),
            TpchTable::Region => (if part == 1 { 5 } else { 0 }, true),
            TpchTable::Part => (
                rows(PartGenerator::calculate_row_count(
                    scale_factor,
                    part,
                    part_count,
                )),
                true,
            ),
            TpchTable::Supplier => (
                rows(SupplierGenerator::calculate_row_count(
                    scale_factor,
                    part,
                    part_count,
                )),
                true,
            ),
            // The partsupp generator splits on part keys and yields 4 rows per part.
            TpchTable::PartSupp => (
                rows(PartSuppGenerator::calculate_row_count(
                    scale_factor,
                    part,
                    part_count,
                )) * SUPPLIERS_PER_PART,
                true,
            ),
            TpchTable::Customer => (
                rows(CustomerGenerator::calculate_row_count(
                    scale_factor,
                    part,
                    part_count,
                )),
                true,
            ),
            TpchTable::Orders => (
                rows(OrderGenerator::calculate_row_count(
                    scale_factor,
                    part,
                    part_count,
                )),
                true,
            ),
            // The lineitem generator splits on orders; each order has 1 to 7 lines.
            TpchTable::LineItem => (
                rows(OrderGenerator::calculate_row_count(
                    scale_factor,
                    part,
                    part_count,
                )) * LINES_PER_ORDER_ESTIMATE,
                false,
            ),
        }
    }

    /// Total rows of the table at `scale_factor`, and whether the number is exact. `lineitem` is exact
    /// at the scale factors of the built-in schemas (the TPC-H spec's published counts), an estimate
    /// elsewhere.
    pub fn row_count(self, scale_factor: f64) -> (u64, bool) {
        if self == TpchTable::LineItem
            && let Some(n) = exact_lineitem_rows(scale_factor)
        {
            return (n, true);
        }
        self.split_row_count(scale_factor, 1, 1)
    }

    /// Number of splits (generator parts) a scan of this table uses at `scale_factor`:
    /// `ceil(rows / TARGET_SPLIT_ROWS)`, at least 1 and at most [`MAX_SPLITS`]. Scale-independent
    /// tables always have 1 split.
    pub fn split_count(self, scale_factor: f64) -> usize {
        if self.is_scale_independent() {
            return 1;
        }
        let (rows, _) = self.split_row_count(scale_factor, 1, 1);
        let splits = rows.div_ceil(TARGET_SPLIT_ROWS).clamp(1, MAX_SPLITS);
        usize::try_from(splits).unwrap_or(1)
    }

    /// A lazy iterator over the rows of generator part `part` (1-based) of `part_count`, in batches of
    /// at most `batch_size` rows with the table's full schema. Nothing is generated until it is polled.
    pub(crate) fn generate(
        self,
        scale_factor: f64,
        part: i32,
        part_count: i32,
        batch_size: usize,
    ) -> BatchIter {
        let (sf, p, n, b) = (scale_factor, part, part_count, batch_size.max(1));
        match self {
            TpchTable::Nation => {
                if p != 1 {
                    return Box::new(std::iter::empty());
                }
                Box::new(NationArrow::new(NationGenerator::new(sf, 1, 1)).with_batch_size(b))
            }
            TpchTable::Region => {
                if p != 1 {
                    return Box::new(std::iter::empty());
                }
                Box::new(RegionArrow::new(RegionGenerator::new(sf, 1, 1)).with_batch_size(b))
            }
            TpchTable::Part => {
                Box::new(PartArrow::new(PartGenerator::new(sf, p, n)).with_batch_size(b))
            }
            TpchTable::Supplier => {
                Box::new(SupplierArrow::new(SupplierGenerator::new(sf, p, n)).with_batch_size(b))
            }
            TpchTable::PartSupp => {
                Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, p, n)).with_batch_size(b))
            }
            TpchTable::Customer => {
                Box::new(CustomerArrow::new(CustomerGenerator::new(sf, p, n)).with_batch_size(b))
            }
            TpchTable::Orders => {
                Box::new(OrderArrow::new(OrderGenerator::new(sf, p, n)).with_batch_size(b))
            }
            TpchTable::LineItem => {
                Box::new(LineItemArrow::new(LineItemGenerator::new(sf, p, n)).with_batch_size(b))
            }
        }
    }
}

impl fmt::Display for TpchTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `lineitem` row counts published for the standard scale factors (TPC-H spec 4.2.5 / dbgen output).
fn exact_lineitem_rows(scale_factor: f64) -> Option<u64> {
    const KNOWN: [(f64, u64); 5] = [
        (0.01, 60_175),
        (1.0, 6_001_215),
        (10.0, 59_986_052),
        (100.0, 600_037_902),
        (1000.0, 5_999_989_709),
    ];
    KNOWN
        .iter()
        .find(|(sf, _)| (sf - scale_factor).abs() < f64::EPSILON * 1000.0)
        .map(|(_, n)| *n)
}

/// The table's schema narrowed to `projection` (column indices into [`TpchTable::schema`]).
pub(crate) fn projected_schema(
    table: TpchTable,
    projection: Option<&[usize]>,
) -> Result<SchemaRef, ArrowError> {
    let schema = table.schema();
    match projection {
        None => Ok(schema),
        Some(p) => Ok(Arc::new(schema.project(p)?)),
    }
}
