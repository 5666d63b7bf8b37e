//! One Arrow value as a store-neutral [`Cell`]: what every exporter encodes (PostgreSQL binary COPY,
//! Redis strings and JSON, BSON), so each type is understood in one place.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use serde_json::Value as Json;

/// A value of any exported type.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// Boolean.
    Bool(bool),
    /// Signed integer.
    Int(i64),
    /// Unsigned integer.
    UInt(u64),
    /// Floating point.
    Float(f64),
    /// Text.
    Str(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// Unscaled value, precision, scale.
    Decimal(i128, u8, i8),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since the epoch; `true` when the column has a time zone (an instant).
    Timestamp(i64, bool),
    /// A list.
    List(Vec<Cell>),
    /// A struct's fields in order (a map becomes a struct of its keys).
    Struct(Vec<(String, Cell)>),
}

/// True when exporters support `t` (all Delta column types do).
pub fn supported(t: &DataType) -> bool {
    use DataType::*;
    match t {
        Null | Boolean | Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float32 | Float64 | Utf8
        | LargeUtf8 | Utf8View | Binary | LargeBinary | BinaryView | Date32 | Date64 | Timestamp(_, _)
        | Decimal128(_, _) => true,
        List(f) | LargeList(f) => supported(f.data_type()),
        Struct(fields) => fields.iter().all(|f| supported(f.data_type())),
        Map(entries, _) => supported(entries.data_type()),
        _ => false,
    }
}

fn micros(v: i64, unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => v * 1_000_000,
        TimeUnit::Millisecond => v * 1_000,
        TimeUnit::Microsecond => v,
        TimeUnit::Nanosecond => v.div_euclid(1_000),
    }
}

/// The value at `row` of `array`.
pub fn cell(array: &ArrayRef, row: usize) -> Cell {
    cell_of(array.as_ref(), row)
}

fn cell_of(array: &dyn Array, row: usize) -> Cell {
    use DataType::*;
    if array.is_null(row) {
        return Cell::Null;
    }
    match array.data_type() {
        Null => Cell::Null,
        Boolean => Cell::Bool(array.as_boolean().value(row)),
        Int8 => Cell::Int(array.as_primitive::<Int8Type>().value(row) as i64),
        Int16 => Cell::Int(array.as_primitive::<Int16Type>().value(row) as i64),
        Int32 => Cell::Int(array.as_primitive::<Int32Type>().value(row) as i64),
        Int64 => Cell::Int(array.as_primitive::<Int64Type>().value(row)),
        UInt8 => Cell::UInt(array.as_primitive::<UInt8Type>().value(row) as u64),
        UInt16 => Cell::UInt(array.as_primitive::<UInt16Type>().value(row) as u64),
        UInt32 => Cell::UInt(array.as_primitive::<UInt32Type>().value(row) as u64),
        UInt64 => Cell::UInt(array.as_primitive::<UInt64Type>().value(row)),
        Float32 => Cell::Float(array.as_primitive::<Float32Type>().value(row) as f64),
        Float64 => Cell::Float(array.as_primitive::<Float64Type>().value(row)),
        Utf8 => Cell::Str(array.as_string::<i32>().value(row).to_string()),
        LargeUtf8 => Cell::Str(array.as_string::<i64>().value(row).to_string()),
        Utf8View => Cell::Str(array.as_string_view().value(row).to_string()),
        Binary => Cell::Bytes(array.as_binary::<i32>().value(row).to_vec()),
        LargeBinary => Cell::Bytes(array.as_binary::<i64>().value(row).to_vec()),
        BinaryView => Cell::Bytes(array.as_binary_view().value(row).to_vec()),
        Date32 => Cell::Date(array.as_primitive::<Date32Type>().value(row)),
        Date64 => Cell::Date((array.as_primitive::<Date64Type>().value(row) / 86_400_000) as i32),
        Timestamp(unit, tz) => {
            let v = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
            };
            Cell::Timestamp(micros(v, unit), tz.is_some())
        }
        Decimal128(p, s) => Cell::Decimal(array.as_primitive::<Decimal128Type>().value(row), *p, *s),
        List(_) => {
            let values = array.as_list::<i32>().value(row);
            Cell::List((0..values.len()).map(|i| cell_of(values.as_ref(), i)).collect())
        }
        LargeList(_) => {
            let values = array.as_list::<i64>().value(row);
            Cell::List((0..values.len()).map(|i| cell_of(values.as_ref(), i)).collect())
        }
        Struct(fields) => {
            let s = array.as_struct();
            Cell::Struct(fields.iter().enumerate().map(|(i, f)| (f.name().clone(), cell_of(s.column(i).as_ref(), row))).collect())
        }
        Map(_, _) => {
            let m = array.as_map();
            let entries = m.value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            Cell::Struct(
                (0..entries.len())
                    .map(|i| (cell_of(keys.as_ref(), i).to_text().unwrap_or_default(), cell_of(values.as_ref(), i)))
                    .collect(),
            )
        }
        other => Cell::Str(format!("<unsupported {other}>")),
    }
}

/// `unscaled × 10^-scale` as exact decimal text.
pub fn decimal_text(unscaled: i128, scale: i8) -> String {
    let negative = unscaled < 0;
    let digits = unscaled.unsigned_abs().to_string();
    let text = if scale <= 0 {
        format!("{digits}{}", "0".repeat((-scale) as usize))
    } else {
        let s = scale as usize;
        let padded = if digits.len() <= s { format!("{}{digits}", "0".repeat(s - digits.len() + 1)) } else { digits };
        let (int, frac) = padded.split_at(padded.len() - s);
        format!("{int}.{frac}")
    };
    if negative { format!("-{text}") } else { text }
}

impl Cell {
    /// Text for a key, a hash field or a sorted-set member: ISO dates and timestamps, exact
    /// decimals, JSON for lists and structs. `None` for NULL.
    pub fn to_text(&self) -> Option<String> {
        Some(match self {
            Cell::Null => return None,
            Cell::Str(s) => s.clone(),
            Cell::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
            other => match other.to_json() {
                Json::String(s) => s,
                j => j.to_string(),
            },
        })
    }

    /// As JSON: numbers stay numbers (decimals become exact strings, as JSON numbers are floats
    /// to most readers), dates and timestamps ISO 8601 strings.
    pub fn to_json(&self) -> Json {
        match self {
            Cell::Null => Json::Null,
            Cell::Bool(b) => Json::Bool(*b),
            Cell::Int(i) => Json::from(*i),
            Cell::UInt(u) => Json::from(*u),
            Cell::Float(f) => serde_json::Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
            Cell::Str(s) => Json::String(s.clone()),
            Cell::Bytes(b) => Json::String(b.iter().map(|x| format!("{x:02x}")).collect()),
            Cell::Decimal(v, _, s) => Json::String(decimal_text(*v, *s)),
            Cell::Date(d) => Json::String(
                (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid") + chrono::Duration::days(*d as i64)).to_string(),
            ),
            Cell::Timestamp(us, zoned) => {
                let t = chrono::DateTime::from_timestamp_micros(*us).unwrap_or_default();
                Json::String(if *zoned {
                    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                } else {
                    t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string()
                })
            }
            Cell::List(items) => Json::Array(items.iter().map(Cell::to_json).collect()),
            Cell::Struct(fields) => Json::Object(fields.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    /// As a number, for sorted-set scores.
    pub fn to_f64(&self) -> Option<f64> {
        match self {
            Cell::Int(i) => Some(*i as f64),
            Cell::UInt(u) => Some(*u as f64),
            Cell::Float(f) => Some(*f),
            Cell::Decimal(v, _, s) => decimal_text(*v, *s).parse().ok(),
            Cell::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal_text(12345, 2), "123.45");
        assert_eq!(decimal_text(-5, 3), "-0.005");
        assert_eq!(decimal_text(7, 0), "7");
        assert_eq!(decimal_text(7, -2), "700");
    }
}
