//! The per-pair comparison levels as two SQL functions run on the executors:
//! `title_level(r_title, c_title)` and `artist_level(r_artist, c_artist, r_artists, c_artists)`.
//!
//! Why one function per field and not a CASE over `jaro_winkler` and `token_set_ratio`: that CASE
//! ran at 0.44 M pairs/s on 2 cores (13.6M pairs in 31 s at scale 10), most of it in
//! `token_set_ratio`'s sets of owned strings, and both string UDFs copied their Utf8View input to
//! Utf8 first. Here each pair is read in place and the cheap tests run first.
//!
//! Title levels (higher is closer; -1 = no title, which neither supports nor opposes a match):
//! | level | meaning |
//! |---|---|
//! | 5 | equal (folded) |
//! | 4 | one typo: one character dropped, added, changed or two swapped (titles of 5+ characters) |
//! | 3 | one is a prefix of the other (a truncated upload, or a tail the parser kept), 4+ characters |
//! | 2 | Jaro-Winkler >= 0.92 |
//! | 1 | Jaro-Winkler >= 0.80, or every word of the shorter title is in the longer |
//! | 0 | else |
//!
//! Separating "one typo" from "similar" matters: with one level for Jaro-Winkler >= 0.92, another
//! of an artist's songs with a similar title took the place of a recording missing from the
//! catalogue (a third of the wrong matches at scale 10).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int32Array};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility};

/// Levels of [`title_level`], highest first is 5.
pub const TITLE_LEVELS: usize = 6;
/// Levels of [`artist_level`].
pub const ARTIST_LEVELS: usize = 4;

/// Whether `a` and `b` are within one edit (insertion, deletion, substitution or adjacent
/// transposition): the optimal-string-alignment distance is at most 1, in one pass.
pub fn within_one_edit(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let (short, long) = if a.len() <= b.len() { (&a, &b) } else { (&b, &a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let start = short.iter().zip(long.iter()).take_while(|(x, y)| x == y).count();
    if start == short.len() {
        return true; // equal, or one character appended
    }
    if short.len() == long.len() {
        // One substitution, or one swap of neighbours.
        let rest = |from: usize| short[from..] == long[from..];
        rest(start + 1) || (start + 1 < short.len() && short[start] == long[start + 1] && short[start + 1] == long[start] && rest(start + 2))
    } else {
        short[start..] == long[start + 1..]
    }
}

/// Every word of the shorter text is a word of the longer (both non-empty).
fn words_contained(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut any = false;
    for w in short.split(' ').filter(|w| !w.is_empty()) {
        any = true;
        if !long.split(' ').any(|x| x == w) {
            return false;
        }
    }
    any
}

/// The title level of a reading's and a recording's folded titles (see the module table).
pub fn title_level(r: &str, c: &str) -> i32 {
    if r.is_empty() {
        return -1;
    }
    if r == c {
        return 5;
    }
    let len = r.chars().count().min(c.chars().count());
    if len >= 5 && within_one_edit(r, c) {
        return 4;
    }
    if len >= 4 && (c.starts_with(r) || r.starts_with(c)) {
        return 3;
    }
    let jw = strsim::jaro_winkler(r, c);
    if jw >= 0.92 {
        2
    } else if jw >= 0.80 || words_contained(r, c) {
        1
    } else {
        0
    }
}

/// The artist level: 3 equal, 2 Jaro-Winkler >= 0.90, 1 one main artist credited on the other
/// side (its words inside the other side's full credit, "jay z" in "beyonce jay z"), 0 else, -1
/// when either main artist is missing. Credits are folded text without separators, so a main
/// artist that begins the other's ("emma" and "emma river") is a different artist, not a credit:
/// as a plain substring test it was level 1, and a namesake's song of the same title took
/// probability from the right recording ("Angel" by Emma at 0.84, beside "Angel" by Emma River).
pub fn artist_level(r: &str, c: &str, r_all: &str, c_all: &str) -> i32 {
    if r.is_empty() || c.is_empty() {
        return -1;
    }
    if r == c {
        return 3;
    }
    if strsim::jaro_winkler(r, c) >= 0.90 {
        2
    } else if !starts_with_words(r, c) && !starts_with_words(c, r) && (contains_words(r_all, c) || contains_words(c_all, r)) {
        1
    } else {
        0
    }
}

/// `text` holds `words` as whole words (space-separated, as folded text is).
fn contains_words(text: &str, words: &str) -> bool {
    text.match_indices(words).any(|(at, _)| {
        let end = at + words.len();
        (at == 0 || text.as_bytes()[at - 1] == b' ') && (end == text.len() || text.as_bytes()[end] == b' ')
    })
}

/// `text` begins with `words` followed by more words.
fn starts_with_words(text: &str, words: &str) -> bool {
    text.len() > words.len() && text.starts_with(words) && text.as_bytes()[words.len()] == b' '
}

/// Registers `title_level` and `artist_level` with the cluster's UDF list of this process.
pub fn register() {
    for arity in [2, 4] {
        backbeat_cluster::udf_registry::register_udf(Arc::new(ScalarUDF::from(LevelUdf::new(arity))));
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct LevelUdf {
    arity: usize,
    signature: Signature,
}

impl LevelUdf {
    fn new(arity: usize) -> Self {
        Self { arity, signature: Signature::one_of(vec![TypeSignature::String(arity)], Volatility::Immutable) }
    }
}

/// Read access to a Utf8, LargeUtf8 or Utf8View column without copying it.
pub(super) enum Texts<'a> {
    Utf8(&'a arrow::array::StringArray),
    View(&'a arrow::array::StringViewArray),
    Large(&'a arrow::array::LargeStringArray),
}

impl<'a> Texts<'a> {
    pub(super) fn of(array: &'a ArrayRef) -> Option<Self> {
        match array.data_type() {
            DataType::Utf8 => Some(Self::Utf8(array.as_string::<i32>())),
            DataType::LargeUtf8 => Some(Self::Large(array.as_string::<i64>())),
            DataType::Utf8View => Some(Self::View(array.as_string_view())),
            _ => None,
        }
    }

    /// The value of a row, "" when null.
    pub(super) fn get(&self, row: usize) -> &'a str {
        match self {
            Self::Utf8(a) if !a.is_null(row) => a.value(row),
            Self::Large(a) if !a.is_null(row) => a.value(row),
            Self::View(a) if !a.is_null(row) => a.value(row),
            _ => "",
        }
    }
}

/// A string UDF's arguments as arrays [`Texts`] reads: Utf8, LargeUtf8 and Utf8View as they are,
/// anything else (dictionaries) cast to Utf8 once.
pub(super) fn text_arrays(args: &ScalarFunctionArgs) -> Result<Vec<ArrayRef>> {
    ColumnarValue::values_to_arrays(&args.args)?
        .into_iter()
        .map(|a| if Texts::of(&a).is_some() { Ok(a) } else { Ok(cast(&a, &DataType::Utf8)?) })
        .collect()
}

impl ScalarUDFImpl for LevelUdf {
    fn name(&self) -> &str {
        if self.arity == 2 { "title_level" } else { "artist_level" }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = text_arrays(&args)?;
        let texts: Vec<Texts> = arrays.iter().filter_map(Texts::of).collect();
        if texts.len() != self.arity {
            return exec_err!("{} takes {} strings", self.name(), self.arity);
        }
        let rows = arrays[0].len();
        let levels: Int32Array = (0..rows)
            .map(|i| {
                Some(match texts.as_slice() {
                    [r, c] => title_level(r.get(i), c.get(i)),
                    [r, c, ra, ca] => artist_level(r.get(i), c.get(i), ra.get(i), ca.get(i)),
                    _ => unreachable!("arity checked"),
                })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(levels)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_edit_is_exactly_one_edit() {
        for (a, b) in [("halo", "halo"), ("halo", "hallo"), ("halo", "alo"), ("halo", "hxlo"), ("halo", "hlao"), ("halo", "hal"), ("", "a"), ("방탄", "방탄소")] {
            assert!(within_one_edit(a, b) && within_one_edit(b, a), "{a} ~ {b}");
        }
        for (a, b) in [("halo", "hello"), ("halo", "ahlx"), ("halo", "ha"), ("abcd", "badc"), ("abc", "cba")] {
            assert!(!within_one_edit(a, b) && !within_one_edit(b, a), "{a} !~ {b}");
        }
    }

    #[test]
    fn title_levels_order_closeness() {
        assert_eq!(title_level("", "halo"), -1);
        assert_eq!(title_level("bohemian rhapsody", "bohemian rhapsody"), 5);
        assert_eq!(title_level("bohemian rhapsdy", "bohemian rhapsody"), 4);
        assert_eq!(title_level("halo", "hali"), 1); // one typo, but too short for level 4 (Jaro-Winkler 0.88)
        assert_eq!(title_level("bohemian rhap", "bohemian rhapsody"), 3);
        assert_eq!(title_level("rhapsody bohemian", "bohemian rhapsody"), 1);
        assert_eq!(title_level("yellow submarine", "bohemian rhapsody"), 0);
    }

    #[test]
    fn artist_levels() {
        assert_eq!(artist_level("", "queen", "", "queen"), -1);
        assert_eq!(artist_level("queen", "queen", "queen", "queen"), 3);
        assert_eq!(artist_level("beyonce", "beyonc", "beyonce", "beyonc"), 2);
        assert_eq!(artist_level("jay z", "beyonce", "jay z", "beyonce jay z"), 1);
        assert_eq!(artist_level("emma", "emma river", "emma", "emma river"), 0); // a namesake, not a credit
        assert_eq!(artist_level("ann", "joanna", "ann", "joanna"), 0); // inside a word is no credit
        assert_eq!(artist_level("abba", "queen", "abba", "queen"), 0);
    }
}
