//! `backbeat sql`: run a statement or a script on a cluster and print the results.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use backbeat_cluster::session::rows_written;
use backbeat_cluster::sql_script::{returns_rows, split_statements};
use indicatif::{ProgressBar, ProgressStyle};

use crate::SqlArgs;
use crate::result_output::ResultWriter;

/// Runs `backbeat sql`.
pub async fn run(args: SqlArgs) -> Result<()> {
    let script = match (&args.query, &args.file) {
        (Some(q), _) => q.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read SQL file {}", path.display()))?,
        (None, None) => bail!("give a query or -f FILE"),
    };
    let statements = split_statements(&script);
    if statements.is_empty() {
        bail!("no SQL statement given");
    }

    let session = args.session.connect().await?;
    let mut out = ResultWriter::new(args.format, args.out.as_deref())?;

    for (i, sql) in statements.iter().enumerate() {
        let spinner = spinner(statements.len(), i, sql);
        let started = Instant::now();
        let result = async {
            let df = session.sql(sql).await?;
            let schema = df.schema().as_arrow().clone();
            let batches = df.collect().await?;
            anyhow::Ok((schema, batches))
        }
        .await;
        spinner.finish_and_clear();
        let (schema, batches) = if statements.len() > 1 {
            result.with_context(|| format!("statement {} of {}", i + 1, statements.len()))?
        } else {
            result?
        };
        if returns_rows(sql) {
            out.write(&schema, &batches)?;
        } else {
            let written = rows_written(&batches);
            eprintln!("OK: {written} rows ({:.2?})", started.elapsed());
        }
    }
    out.finish()
}

fn spinner(total: usize, index: usize, sql: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("static template"));
    let first_line: String = sql.lines().next().unwrap_or("").chars().take(60).collect();
    bar.set_message(format!("[{}/{}] {first_line}", index + 1, total));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
