//! TPC-H data as Parquet table directories, generated in-process with `tpchgen`, for correctness
//! tests and benchmarks. Each table becomes `<dir>/<table>/part-N.parquet`, which the lake catalog
//! reads as a Parquet table named after the directory. [`write_tpch_delta`] makes Delta copies of
//! those tables, file for file, so a benchmark can compare the Delta scan path with plain Parquet
//! over the same bytes.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};
use arrow::array::RecordBatchReader;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::delta::DeltaTableProvider;
use crate::delta::commit::commit_files;
use crate::delta::writer::FileWriter;

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

/// Copies every Parquet table under `parquet_dir` into a Delta table of the same name under
/// `delta_dir`: one data file per source file, same compression, committed as version 0 with
/// per-file statistics. Strings become `Utf8` (Delta has no view types); values are unchanged.
pub async fn write_tpch_delta(parquet_dir: &Path, delta_dir: &Path) -> Result<()> {
    for table in TPCH_TABLES {
        let source_dir = parquet_dir.join(table);
        let target_dir = delta_dir.join(table);
        std::fs::create_dir_all(&target_dir).with_context(|| format!("cannot create {}", target_dir.display()))?;
        let uri = url::Url::from_directory_path(std::path::absolute(&target_dir)?)
            .map_err(|()| anyhow::anyhow!("{} is not an absolute path", target_dir.display()))?;
        let mut sources: Vec<_> = std::fs::read_dir(&source_dir)
            .with_context(|| format!("cannot list {}", source_dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect();
        sources.sort();
        let mut adds = Vec::new();
        let mut delta_schema = None;
        for source in &sources {
            let file = File::open(source).with_context(|| format!("cannot open {}", source.display()))?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .with_context(|| format!("cannot read {}", source.display()))?
                .build()?;
            let schema = crate::delta::schema::delta_compatible_schema(&reader.schema())?;
            // One writer per source file, with a target size no file reaches: file for file.
            let mut writer = FileWriter::try_new(uri.as_str(), schema.clone(), &[])?
                .with_writer_properties(parquet_properties())
                .with_target_file_size(u64::MAX / 2);
            for batch in reader {
                let batch = batch.with_context(|| format!("cannot read {}", source.display()))?;
                let columns = batch
                    .columns()
                    .iter()
                    .zip(schema.fields())
                    .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                writer.write(RecordBatch::try_new(schema.clone(), columns)?).await?;
            }
            adds.extend(writer.finish().await?);
            delta_schema = Some(schema);
        }
        let schema = delta_schema.with_context(|| format!("no Parquet files in {}", source_dir.display()))?;
        let spec = DeltaTableProvider::for_create(&uri, schema.clone(), vec![], false)?.spec().clone();
        commit_files(spec, &schema, adds)
            .await
            .with_context(|| format!("cannot commit the Delta copy of {table}"))?;
    }
    Ok(())
}

fn parquet_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build()
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
    let props = parquet_properties();
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut writer = ArrowWriter::try_new(file, schema, Some(props))?;
    for batch in batches {
        writer.write(&batch?)?;
    }
    writer.close().with_context(|| format!("cannot finish {}", path.display()))?;
    Ok(())
}
