//! The title parser as SQL functions, run on the executors like any built-in:
//! `parse_video_title(title, channel[, fallback_title])` and `clean_track_title(title)`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanBuilder, ListBuilder, StringArray, StringBuilder, StructArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility};

use super::title_parser::{ParsedTitle, clean_title, parse_video_title};

/// Registers the parser's functions with the cluster's UDF list of this process.
pub fn register() {
    backbeat_cluster::udf_registry::register_udf(Arc::new(ScalarUDF::from(ParserUdf::new(Kind::Video))));
    backbeat_cluster::udf_registry::register_udf(Arc::new(ScalarUDF::from(ParserUdf::new(Kind::Catalogue))));
}

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Kind {
    Video,
    Catalogue,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ParserUdf {
    kind: Kind,
    signature: Signature,
}

impl ParserUdf {
    fn new(kind: Kind) -> Self {
        let arities = match kind {
            Kind::Video => vec![TypeSignature::String(2), TypeSignature::String(3)],
            Kind::Catalogue => vec![TypeSignature::String(1)],
        };
        Self { kind, signature: Signature::one_of(arities, Volatility::Immutable) }
    }
}

fn list_of_text() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

fn fields(kind: Kind) -> Fields {
    match kind {
        Kind::Video => Fields::from(vec![
            Field::new("artists", list_of_text(), false),
            Field::new("artist", DataType::Utf8, true),
            Field::new("title", DataType::Utf8, false),
            Field::new("tags", list_of_text(), false),
            Field::new("derivative", DataType::Boolean, false),
            Field::new("swappable", DataType::Boolean, false),
        ]),
        Kind::Catalogue => Fields::from(vec![Field::new("title", DataType::Utf8, false), Field::new("tags", list_of_text(), false)]),
    }
}

impl ScalarUDFImpl for ParserUdf {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Video => "parse_video_title",
            Kind::Catalogue => "clean_track_title",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(fields(self.kind)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let texts = arrays.iter().map(|a| cast(a, &DataType::Utf8)).collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
        let texts: Vec<&StringArray> = texts.iter().map(|a| a.as_any().downcast_ref::<StringArray>().expect("cast to Utf8")).collect();
        let rows = texts.first().map_or(0, |a| a.len());
        let text = |col: usize, row: usize| texts.get(col).filter(|a| !a.is_null(row)).map(|a| a.value(row));
        let mut artists = ListBuilder::new(StringBuilder::new());
        let mut artist = StringBuilder::new();
        let mut title = StringBuilder::new();
        let mut tags = ListBuilder::new(StringBuilder::new());
        let mut derivative = BooleanBuilder::new();
        let mut swappable = BooleanBuilder::new();
        let mut nulls = Vec::with_capacity(rows);
        for row in 0..rows {
            let parsed = match (self.kind, text(0, row)) {
                (_, None) => None,
                (Kind::Video, Some(t)) => {
                    let p = parse_video_title(t, text(1, row));
                    // The primary title was only noise ("(Official Video)"): the fallback speaks.
                    match text(2, row) {
                        Some(fallback) if p.title.is_empty() || p.artists.is_empty() && p.tags.is_empty() && fallback != t => {
                            let q = parse_video_title(fallback, text(1, row));
                            Some(if q.title.is_empty() { p } else { q })
                        }
                        _ => Some(p),
                    }
                }
                (Kind::Catalogue, Some(t)) => {
                    let (clean, found) = clean_title(t);
                    Some(ParsedTitle { title: clean, tags: found, ..Default::default() })
                }
            };
            nulls.push(parsed.is_some());
            let p = parsed.unwrap_or_default();
            for a in &p.artists {
                artists.values().append_value(a);
            }
            artists.append(true);
            artist.append_option(p.artists.first());
            title.append_value(&p.title);
            let mut names: Vec<&str> = p.tags.iter().map(|t| t.as_str()).collect();
            names.sort_unstable();
            for t in names {
                tags.values().append_value(t);
            }
            tags.append(true);
            derivative.append_value(p.is_derivative());
            swappable.append_value(p.swappable);
        }
        let columns: Vec<ArrayRef> = match self.kind {
            Kind::Video => vec![
                Arc::new(artists.finish()),
                Arc::new(artist.finish()),
                Arc::new(title.finish()),
                Arc::new(tags.finish()),
                Arc::new(derivative.finish()),
                Arc::new(swappable.finish()),
            ],
            Kind::Catalogue => vec![Arc::new(title.finish()), Arc::new(tags.finish())],
        };
        let result = StructArray::try_new(fields(self.kind), columns, Some(nulls.into()));
        match result {
            Ok(array) => Ok(ColumnarValue::Array(Arc::new(array))),
            Err(e) => exec_err!("{}: {e}", self.name()),
        }
    }
}
