//! Writing query results as a terminal table, CSV or JSON, to standard output or a file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use clap::ValueEnum;

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A boxed table for people.
    Table,
    /// CSV with a header row.
    Csv,
    /// JSON: one array of objects per result.
    Json,
}

/// Writes each result in turn.
pub struct ResultWriter {
    format: OutputFormat,
    sink: Box<dyn Write>,
}

impl ResultWriter {
    /// Results go to `out`, or standard output.
    pub fn new(format: OutputFormat, out: Option<&Path>) -> Result<Self> {
        let sink: Box<dyn Write> = match out {
            Some(path) => Box::new(BufWriter::new(
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
            )),
            None => Box::new(std::io::stdout().lock()),
        };
        Ok(Self { format, sink })
    }

    /// Writes one result.
    pub fn write(&mut self, schema: &Schema, batches: &[RecordBatch]) -> Result<()> {
        match self.format {
            OutputFormat::Table => {
                let text = if batches.iter().all(|b| b.num_rows() == 0) {
                    let header: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                    format!("({}) 0 rows", header.join(", "))
                } else {
                    pretty_format_batches(batches)?.to_string()
                };
                writeln!(self.sink, "{text}")?;
            }
            OutputFormat::Csv => {
                let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut self.sink);
                if batches.is_empty() {
                    writer.write(&RecordBatch::new_empty(schema.clone().into()))?;
                }
                for batch in batches {
                    writer.write(batch)?;
                }
            }
            OutputFormat::Json => {
                let mut writer = arrow::json::ArrayWriter::new(&mut self.sink);
                for batch in batches {
                    writer.write(batch)?;
                }
                writer.finish()?;
                if batches.iter().all(|b| b.num_rows() == 0) {
                    write!(self.sink, "[]")?;
                }
                writeln!(self.sink)?;
            }
        }
        Ok(())
    }

    /// Flushes the output.
    pub fn finish(mut self) -> Result<()> {
        self.sink.flush().context("cannot write results")
    }
}
