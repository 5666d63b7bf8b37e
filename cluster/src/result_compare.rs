//! Comparing query results across engines (backbeat cluster, embedded, plain DataFusion, DuckDB):
//! rows rendered as text with floats and decimals rounded to significant digits, then sorted, so
//! ORDER BY ties, floating-point summation order and decimal-versus-float typing do not count as
//! differences. `bench/peers/duckdb_tpch.py` renders DuckDB's rows by the same rules.

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// The rows of `batches` as sorted strings, floats rounded to `digits` significant digits.
pub fn canonical_rows(batches: &[RecordBatch], digits: usize) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("every Arrow type formats"))
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .zip(batch.columns())
                .map(|(f, col)| {
                    let text = f.value(row).to_string();
                    let numeric = col.data_type().is_floating()
                        || matches!(col.data_type(), arrow::datatypes::DataType::Decimal128(_, _) | arrow::datatypes::DataType::Decimal256(_, _));
                    if numeric {
                        text.parse::<f64>().map(|v| round_significant(v, digits)).unwrap_or(text)
                    } else {
                        text
                    }
                })
                .collect();
            rows.push(cells.join(" | "));
        }
    }
    rows.sort();
    rows
}

fn round_significant(v: f64, digits: usize) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    format!("{:.*e}", digits.saturating_sub(1), v)
}

/// Whether two canonical answers (from [`canonical_rows`], or a peer that renders rows the same
/// way) agree: same rows, text cells equal, numeric cells within a relative 10^(1 - `digits`) of
/// each other. Comparing the rounded text alone is not enough: engines round decimal
/// averages differently before we see them (Spark rounds `0.0501446` to scale 6, giving
/// `0.050145`; DataFusion truncates to `0.050144`), and re-rounding can land either side of a digit.
pub fn answers_agree(a: &[String], b: &[String], digits: usize) -> bool {
    let tolerance = 10f64.powi(1 - digits as i32);
    a.len() == b.len()
        && a.iter().zip(b).all(|(ra, rb)| {
            let (ca, cb): (Vec<&str>, Vec<&str>) = (ra.split(" | ").collect(), rb.split(" | ").collect());
            ca.len() == cb.len()
                && ca.iter().zip(&cb).all(|(x, y)| {
                    x == y
                        || match (x.parse::<f64>(), y.parse::<f64>()) {
                            (Ok(x), Ok(y)) => (x - y).abs() <= tolerance * x.abs().max(y.abs()),
                            _ => false,
                        }
                })
        })
}

/// Total rows in `batches`.
pub fn row_count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int32Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn order_and_float_noise_do_not_matter_but_values_do() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int32, false),
            Field::new("v", DataType::Float64, true),
        ]));
        let batch = |k: Vec<i32>, v: Vec<Option<f64>>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int32Array::from(k)), Arc::new(Float64Array::from(v))]).unwrap()
        };
        let a = batch(vec![1, 2], vec![Some(0.1 + 0.2), None]);
        let b = batch(vec![2, 1], vec![None, Some(0.3)]);
        assert_eq!(canonical_rows(&[a.clone()], 9), canonical_rows(&[b], 9));
        let c = batch(vec![1, 2], vec![Some(0.31), None]);
        assert_ne!(canonical_rows(&[a], 9), canonical_rows(&[c], 9));
    }

    #[test]
    fn answers_agree_within_the_last_digit_only() {
        let row = |v: &str| vec![format!("A | {v}")];
        // 0.050145 (rounded) and 0.050144 (truncated) render one digit apart at 4 digits.
        assert!(answers_agree(&row("5.015e-2"), &row("5.014e-2"), 4));
        assert!(!answers_agree(&row("5.024e-2"), &row("5.014e-2"), 4));
        assert!(!answers_agree(&row("5.014e-2"), &["B | 5.014e-2".to_string()], 4));
        assert!(!answers_agree(&row("1"), &[], 4));
    }
}
