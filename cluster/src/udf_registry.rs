//! backbeat's scalar UDFs as DataFusion functions, and the one list every process registers.
//!
//! A UDF has to be known on three sides of a Ballista cluster: the client (to plan SQL), the
//! scheduler (to turn the logical plan into a physical one) and every executor (to decode and run
//! the physical plan). [`backbeat_udfs`] is that single list; `session_state`, the scheduler and the
//! executor all take it from here so the three can never disagree.

use std::sync::{Arc, RwLock};

use arrow::array::{Array, ArrayRef, Float64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use ballista_core::registry::BallistaFunctionRegistry;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::text_similarity;

/// UDFs that crates above this one define (the jobs' title parser): registered at process start,
/// before any session, scheduler or executor is built, like the partition kernels.
static EXTRA_UDFS: RwLock<Vec<Arc<ScalarUDF>>> = RwLock::new(Vec::new());

/// Adds `udf` to [`backbeat_udfs`] in this process; registering a name again replaces it.
pub fn register_udf(udf: Arc<ScalarUDF>) {
    let mut extras = EXTRA_UDFS.write().unwrap_or_else(|e| e.into_inner());
    extras.retain(|u| u.name() != udf.name());
    extras.push(udf);
}

/// Every scalar UDF backbeat ships, ready to register: the string functions here and those
/// registered with [`register_udf`].
pub fn backbeat_udfs() -> Vec<Arc<ScalarUDF>> {
    let mut udfs = builtin_udfs();
    udfs.extend(EXTRA_UDFS.read().unwrap_or_else(|e| e.into_inner()).iter().cloned());
    udfs
}

fn builtin_udfs() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(StringUdf::new(
            "fold_text",
            1,
            DataType::Utf8,
        ))),
        Arc::new(ScalarUDF::from(StringUdf::new(
            "normalize_title",
            1,
            DataType::Utf8,
        ))),
        Arc::new(ScalarUDF::from(StringUdf::new(
            "jaro_winkler",
            2,
            DataType::Float64,
        ))),
        Arc::new(ScalarUDF::from(StringUdf::new(
            "token_set_ratio",
            2,
            DataType::Float64,
        ))),
    ]
}

/// The executor-side registry: DataFusion's and Ballista's built-ins, DataFusion's array functions
/// (which Ballista's default leaves out, so `make_array`, `array_length` and friends failed with
/// "PhysicalExtensionCodec is not provided for scalar function make_array"), and [`backbeat_udfs`].
pub fn executor_function_registry() -> BallistaFunctionRegistry {
    let mut registry = BallistaFunctionRegistry::default();
    for f in datafusion::functions_nested::all_default_nested_functions() {
        registry.scalar_functions.entry(f.name().to_string()).or_insert(f);
    }
    for udf in backbeat_udfs() {
        registry
            .scalar_functions
            .insert(udf.name().to_string(), udf);
    }
    registry
}

/// One struct serves all three functions: they share argument handling (any string type in,
/// NULL in gives NULL out) and differ only in the pure function applied per row.
#[derive(Debug, PartialEq, Eq, Hash)]
struct StringUdf {
    name: &'static str,
    signature: Signature,
    return_type: DataType,
}

impl StringUdf {
    fn new(name: &'static str, arity: usize, return_type: DataType) -> Self {
        Self {
            name,
            // `string` accepts Utf8, LargeUtf8 and Utf8View and coerces other types to text.
            signature: Signature::string(arity, Volatility::Immutable),
            return_type,
        }
    }
}

impl ScalarUDFImpl for StringUdf {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.return_type.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let strings = arrays
            .iter()
            .map(|a| cast(a, &DataType::Utf8))
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
        let strings: Vec<&StringArray> = strings
            .iter()
            .map(|a| a.as_any().downcast_ref::<StringArray>().expect("cast to Utf8"))
            .collect();

        let result: ArrayRef = match (self.name, strings.as_slice()) {
            ("normalize_title", [a]) => Arc::new(
                a.iter()
                    .map(|v| v.map(text_similarity::normalize_title))
                    .collect::<StringArray>(),
            ),
            ("fold_text", [a]) => Arc::new(
                a.iter()
                    .map(|v| v.map(text_similarity::fold_text))
                    .collect::<StringArray>(),
            ),
            ("jaro_winkler", [a, b]) => Arc::new(pairwise(a, b, text_similarity::jaro_winkler)),
            ("token_set_ratio", [a, b]) => {
                Arc::new(pairwise(a, b, text_similarity::token_set_ratio))
            }
            (name, args) => return exec_err!("{name} called with {} arguments", args.len()),
        };
        Ok(ColumnarValue::Array(result))
    }
}

fn pairwise(a: &StringArray, b: &StringArray, f: fn(&str, &str) -> f64) -> Float64Array {
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| Some(f(x?, y?)))
        .collect()
}
