//! TPC-H data as Parquet table directories, generated in-process with `tpchgen`, for correctness
//! tests and benchmarks. Each table becomes `<dir>/<table>/part-N.parquet`, which the lake catalog
//! reads as a Parquet table named after the directory.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

/// The eight TPC-H tables, by the names the queries use.
pub const TPCH_TABLES: [&str; 8] = [
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];

/// Writes all eight tables at `scale` under `dir`, each split into `files` Parquet files
/// (nation and region are always one file: they have 25 and 5 rows).
pub fn write_tpch_parquet(scale: f64, dir: &Path, files: usize) -> Result<()> {
    let n = files.max(1) as i32;
    for part in 1..=n {
        let p = part as usize;
        write(dir, "customer", p, CustomerArrow::new(CustomerGenerator::new(scale, part, n)))?;
        write(dir, "lineitem", p, LineItemArrow::new(LineItemGenerator::new(scale, part, n)))?;
        write(dir, "orders", p, OrderArrow::new(OrderGenerator::new(scale, part, n)))?;
        write(dir, "part", p, PartArrow::new(PartGenerator::new(scale, part, n)))?;
        write(dir, "partsupp", p, PartSuppArrow::new(PartSuppGenerator::new(scale, part, n)))?;
        write(dir, "supplier", p, SupplierArrow::new(SupplierGenerator::new(scale, part, n)))?;
    }
    write(dir, "nation", 1, NationArrow::new(NationGenerator::new(scale, 1, 1)))?;
    write(dir, "region", 1, RegionArrow::new(RegionGenerator::new(scale, 1, 1)))?;
    Ok(())
}

fn write(
    dir: &Path,
    table: &str,
    part: usize,
    batches: impl Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>>,
) -> Result<()> {
    let table_dir = dir.join(table);
    std::fs::create_dir_all(&table_dir).with_context(|| format!("cannot create {}", table_dir.display()))?;
    let path = table_dir.join(format!("part-{part}.parquet"));
    let mut batches = batches.peekable();
    let schema = match batches.peek() {
        Some(Ok(first)) => first.schema(),
        Some(Err(e)) => anyhow::bail!("generating {table}: {e}"),
        None => return Ok(()),
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut writer = ArrowWriter::try_new(file, schema, Some(props))?;
    for batch in batches {
        writer.write(&batch?)?;
    }
    writer.close().with_context(|| format!("cannot finish {}", path.display()))?;
    Ok(())
}
