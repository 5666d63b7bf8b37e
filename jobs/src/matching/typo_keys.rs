//! Blocking keys that survive one typo: `typo_keys(exact, fuzzy)` returns 64-bit keys for the pair
//! (exact field, deletion neighbourhood of the fuzzy field's first [`PREFIX`] characters).
//!
//! Two strings within one edit (a dropped, inserted, changed or swapped character) share at least
//! one deletion variant: the string itself or the string with one character removed (the idea of
//! SymSpell). Keying on a prefix also catches truncation ("Some Long Title..." cut after at least
//! `PREFIX - 1` characters) and any typo past the prefix. Joined on these keys, a reading meets the
//! recordings with the same exact field and a nearly equal other field, a few per reading however
//! common the artist or the title, where blocking on the artist alone compared every reading with
//! up to `max_block` of that artist's recordings (13.6M pairs for 100,000 items at scale 10).
//!
//! Keys are xxHash64 hashes, stable across builds and processes: the catalogue's keys are stored
//! with it (`<out>_catalogue_keys`) and met by items' keys computed in later runs. A collision
//! only adds a candidate pair, which scoring then rejects.

use std::sync::Arc;

use arrow::array::{Array, Int64Builder, ListBuilder};

use super::compare::Texts;
use arrow::datatypes::{DataType, Field};
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility};

/// Characters of the fuzzy field that are keyed: 8 (9 keys a row) is selective beside an exact
/// artist or title and catches a title truncated after 7 characters.
pub const PREFIX: usize = 8;

/// The keys of (exact, fuzzy): none when either is empty. Besides the deletion variants of the
/// prefix (trimmed, so "golden o" of "golden officila" meets "golden"), the fuzzy field's first
/// word is a key of its own: a title followed by words the parser left ("storm official music
/// vieo", the packaging misspelt) or an artist with more words ("otis rbel").
pub fn typo_keys(exact: &str, fuzzy: &str) -> Vec<i64> {
    if exact.is_empty() || fuzzy.is_empty() {
        return Vec::new();
    }
    let chars: Vec<char> = fuzzy.chars().take(PREFIX).collect();
    let hash = |tag: u8, text: &mut dyn Iterator<Item = char>| {
        let text: String = text.collect();
        let mut bytes = Vec::with_capacity(exact.len() + text.len() + 2);
        bytes.extend_from_slice(exact.as_bytes());
        bytes.extend_from_slice(&[0, tag]);
        bytes.extend_from_slice(text.trim().as_bytes());
        twox_hash::XxHash64::oneshot(0, &bytes) as i64
    };
    let variant = |skip: Option<usize>| hash(0xff, &mut chars.iter().enumerate().filter(|(i, _)| Some(*i) != skip).map(|(_, c)| *c));
    let mut keys: Vec<i64> = std::iter::once(variant(None)).chain((0..chars.len()).map(|i| variant(Some(i)))).collect();
    if let Some(word) = fuzzy.split(' ').find(|w| !w.is_empty()) {
        keys.push(hash(0xfe, &mut word.chars()));
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Registers `typo_keys` with the cluster's UDF list of this process.
pub fn register() {
    backbeat_cluster::udf_registry::register_udf(Arc::new(ScalarUDF::from(TypoKeysUdf::new())));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TypoKeysUdf {
    signature: Signature,
}

impl TypoKeysUdf {
    fn new() -> Self {
        Self { signature: Signature::one_of(vec![TypeSignature::String(2)], Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for TypoKeysUdf {
    fn name(&self) -> &str {
        "typo_keys"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new("item", DataType::Int64, true))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = super::compare::text_arrays(&args)?;
        let (Some(a), Some(b)) = (arrays.first().and_then(Texts::of), arrays.get(1).and_then(Texts::of)) else {
            return datafusion::common::exec_err!("typo_keys takes two strings");
        };
        let mut out = ListBuilder::new(Int64Builder::new());
        for row in 0..arrays[0].len() {
            // A null field is an empty one: no keys.
            out.values().append_slice(&typo_keys(a.get(row), b.get(row)));
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(a: &str, b: &str) -> bool {
        let kb = typo_keys("artist", b);
        typo_keys("artist", a).iter().any(|k| kb.contains(k))
    }

    #[test]
    fn one_edit_or_truncation_shares_a_key() {
        for (a, b) in [
            ("halo", "halo"),
            ("halo", "hallo"),      // inserted
            ("halo", "hlo"),        // dropped
            ("halo", "hxlo"),       // changed
            ("halo", "hlao"),       // swapped
            ("bohemian rhapsody", "bohemian rhapsdy"), // past the prefix
            ("bohemian rhapsody", "bohemia"),          // truncated
            ("bohmeian rhapsody", "bohemian rhapsody"),
            ("방탄소년단", "방탄소년"),
            ("golden officila", "golden"),           // a trimmed variant
            ("storm official music vieo", "storm"),  // the first word
        ] {
            assert!(share(a, b), "{a} ~ {b}");
        }
        for (a, b) in [("halo", "hello"), ("love", "life"), ("bohemian", "boh"), ("love me", "lover")] {
            assert!(!share(a, b), "{a} !~ {b}");
        }
        // The exact field must be equal.
        assert!(typo_keys("a", "halo").iter().all(|k| !typo_keys("b", "halo").contains(k)));
        assert!(typo_keys("", "halo").is_empty() && typo_keys("a", "").is_empty());
    }
}
