//! Pure string functions behind backbeat's matching UDFs: title normalisation, Jaro-Winkler and a
//! token-set ratio. Kept free of Arrow so they can be unit-tested and reused by jobs directly.
//!
//! These are what ISRC matching leans on: a YouTube title such as
//! `"Beyoncé - Halo (Official Music Video) [HD] ft. X"` must normalise to the same string as the
//! catalogue title `"Halo"` by the same artist, while a different song must not.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Words that, inside brackets, mark the bracket as packaging rather than part of the title.
/// "Remix", "Live", "Acoustic" are deliberately absent: those are different recordings.
static BRACKET_NOISE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)\b(
            official | video | audio | lyrics? | letra | visuali[sz]er | hd | hq | 4k | 1080p |
            remaster(ed)? | explicit | clean | mv | m/v | color\ coded | full\ song | with\ lyrics |
            feat\.? | ft\.? | featuring | prod\.? | produced\ by | out\ now | premiere
        )\b",
    )
    .expect("static regex")
});

/// A bracketed group: (...), [...], {...}, 【...】, not nested.
static BRACKETED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[\(\[\{【]([^\)\]\}】]*)[\)\]\}】]").expect("static regex"));

/// An unbracketed featuring credit runs to the end or to the next separator.
static FEATURING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|\s)(?:feat\.?|ft\.?|featuring)\s+[^\-|/]*").expect("static regex")
});

/// "Remastered 2011", "2011 Remaster", "Remastered Version", anywhere.
static REMASTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\b\d{4}\s+)?\bremaster(?:ed)?\b(?:\s+(?:\d{4}|version|edition))?")
        .expect("static regex")
});

/// Lowercase, strip accents and punctuation, drop bracketed noise ("(Official Video)", "[Lyrics]"),
/// featuring credits and remaster tags, and collapse white space.
///
/// Non-Latin scripts are kept (lowercased where the script has case): "東京" stays "東京".
/// Apostrophes are removed rather than turned into spaces so "Don't" matches "Dont".
pub fn normalize_title(input: &str) -> String {
    // NFKD splits "é" into "e" + a combining accent, and folds full-width forms to ASCII.
    let folded: String = input
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase();

    let unbracketed = BRACKETED.replace_all(&folded, |caps: &regex::Captures| {
        let inner = &caps[1];
        if BRACKET_NOISE.is_match(inner) {
            " ".to_string()
        } else {
            format!(" {inner} ")
        }
    });
    let no_feat = FEATURING.replace_all(&unbracketed, " ");
    let no_remaster = REMASTER.replace_all(&no_feat, " ");

    let mut out = Squashed::with_capacity(no_remaster.len());
    no_remaster.chars().for_each(|c| out.push(c));
    out.text
}

/// Text being squashed to lowercase alphanumeric words separated by single spaces: apostrophes
/// vanish ("don't" → "dont"), any other non-alphanumeric run becomes one space, none leads or trails.
struct Squashed {
    text: String,
    pending_space: bool,
}

impl Squashed {
    fn with_capacity(n: usize) -> Self {
        Self { text: String::with_capacity(n), pending_space: false }
    }

    fn push(&mut self, c: char) {
        if c == '\'' || c == '’' || c == '`' {
            return;
        }
        if c.is_alphanumeric() {
            if self.pending_space && !self.text.is_empty() {
                self.text.push(' ');
            }
            self.pending_space = false;
            self.text.extend(c.to_lowercase());
        } else {
            self.pending_space = true;
        }
    }
}

/// Folds text for comparison without dropping anything that carries meaning: Unicode NFKC (full
/// width to ASCII), lowercase, accents stripped from Latin letters only ("Beyoncé" → "beyonce";
/// Hangul, kana and Cyrillic are left whole, where NFKD would split "방" into jamo and drop the
/// voicing mark of "ド"), "ß" as "ss" (Unicode's full case folding: "STRASSE" is how "Straße"
/// is written in capitals, and 2% of the items isrc_match found no candidate for at scale 10 were
/// such titles), apostrophes removed ("Don't" → "dont"), every other non-alphanumeric a single
/// space, trimmed.
pub fn fold_text(input: &str) -> String {
    let mut out = Squashed::with_capacity(input.len());
    for c in input.nfkc() {
        if c == 'ß' || c == 'ẞ' {
            out.push('s');
            out.push('s');
            continue;
        }
        // Latin-1 Supplement to Latin Extended-B, and Latin Extended Additional (Vietnamese).
        if matches!(c, '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}') {
            std::iter::once(c).nfd().filter(|d| !is_combining_mark(*d)).for_each(|d| out.push(d));
        } else {
            out.push(c);
        }
    }
    out.text
}

/// Jaro-Winkler similarity in [0, 1] over Unicode scalar values; two empty strings are identical
/// (1.0), an empty and a non-empty string share nothing (0.0).
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    strsim::jaro_winkler(a, b)
}

/// Token-set ratio in [0, 100], with the semantics of rapidfuzz/fuzzywuzzy `token_set_ratio`:
/// both strings are lowercased and split on non-alphanumerics; the shared tokens are compared
/// against each side's remainder, so word order and repeated or extra words matter little.
/// Returns 0 when either side has no tokens.
pub fn token_set_ratio(a: &str, b: &str) -> f64 {
    let ta = tokens(a);
    let tb = tokens(b);
    if ta.is_empty() || tb.is_empty() {
        return 0.0;
    }
    let intersection: Vec<&str> = ta.intersection(&tb).map(String::as_str).collect();
    let diff_ab: Vec<&str> = ta.difference(&tb).map(String::as_str).collect();
    let diff_ba: Vec<&str> = tb.difference(&ta).map(String::as_str).collect();

    // One side's tokens are a subset of the other's: a perfect set match.
    if !intersection.is_empty() && (diff_ab.is_empty() || diff_ba.is_empty()) {
        return 100.0;
    }

    let sect = intersection.join(" ");
    let join = |rest: &[&str]| {
        let rest = rest.join(" ");
        match (sect.is_empty(), rest.is_empty()) {
            (true, _) => rest,
            (false, true) => sect.clone(),
            (false, false) => format!("{sect} {rest}"),
        }
    };
    let sect_ab = join(&diff_ab);
    let sect_ba = join(&diff_ba);

    let mut best = indel_ratio(&sect_ab, &sect_ba);
    if !sect.is_empty() {
        best = best
            .max(indel_ratio(&sect, &sect_ab))
            .max(indel_ratio(&sect, &sect_ba));
    }
    best
}

fn tokens(s: &str) -> BTreeSet<String> {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// 100 * (1 - indel_distance / (len_a + len_b)), i.e. 200 * LCS / (len_a + len_b).
fn indel_ratio(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let total = a.len() + b.len();
    if total == 0 {
        return 100.0;
    }
    200.0 * longest_common_subsequence(&a, &b) as f64 / total as f64
}

fn longest_common_subsequence(a: &[char], b: &[char]) -> usize {
    // Two rolling rows: titles are short, but playlists are long, so avoid an n*m allocation.
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for ca in a {
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = if ca == cb {
                prev[j] + 1
            } else {
                cur[j].max(prev[j + 1])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_strips_latin_accents_and_keeps_other_scripts_whole() {
        assert_eq!(fold_text("  Beyoncé – Don't Stop (Ｌｉｖｅ)!! "), "beyonce dont stop live");
        assert_eq!(fold_text("방탄소년단 『アイドル』 Ёлка"), "방탄소년단 アイドル ёлка");
        assert_eq!(fold_text("Sơn Tùng M-TP"), "son tung m tp");
        assert_eq!(fold_text("...!"), "");
        assert_eq!(fold_text("STRASSE"), fold_text("Straße"));
    }

    #[test]
    fn normalize_drops_packaging_but_keeps_versions() {
        assert_eq!(normalize_title("Halo (Official Music Video)"), "halo");
        assert_eq!(normalize_title("HALO [Lyrics] [HD]"), "halo");
        assert_eq!(normalize_title("Beyoncé - Halo"), "beyonce halo");
        assert_eq!(normalize_title("Halo ft. Drake"), "halo");
        assert_eq!(normalize_title("Halo (feat. Drake)"), "halo");
        assert_eq!(normalize_title("Here Comes the Sun - Remastered 2009"), "here comes the sun");
        assert_eq!(normalize_title("Here Comes the Sun (2009 Remaster)"), "here comes the sun");
        assert_eq!(normalize_title("Don't Stop Me Now"), "dont stop me now");
        // A remix is a different recording: keep it.
        assert_eq!(normalize_title("Halo (Remix)"), "halo remix");
        assert_eq!(normalize_title("Ｈａｌｏ"), "halo");
        assert_eq!(normalize_title("東京フラッシュ"), "東京フラッシュ");
        assert_eq!(normalize_title("Ελλάδα!"), "ελλαδα");
        assert_eq!(normalize_title(""), "");
        assert_eq!(normalize_title("   !!! "), "");
    }

    #[test]
    fn jaro_winkler_bounds() {
        assert_eq!(jaro_winkler("", ""), 1.0);
        assert_eq!(jaro_winkler("", "abc"), 0.0);
        assert_eq!(jaro_winkler("martha", "martha"), 1.0);
        let v = jaro_winkler("martha", "marhta");
        assert!((v - 0.9611).abs() < 1e-3, "{v}");
    }

    #[test]
    fn token_set_ratio_matches_rapidfuzz() {
        // Reference values from rapidfuzz 3.x: fuzz.token_set_ratio(a, b, processor=utils.default_process).
        assert_eq!(token_set_ratio("fuzzy was a bear", "fuzzy fuzzy was a bear"), 100.0);
        assert_eq!(token_set_ratio("", "abc"), 0.0);
        assert_eq!(token_set_ratio("Halo Beyonce", "beyonce halo"), 100.0);
        let v = token_set_ratio("new york mets", "new york yankees");
        // sect="new york", ab="new york mets", ba="new york yankees":
        // ratio(sect, sect_ab) = 200*8/(8+13) = 76.19
        assert!((v - 76.190).abs() < 0.01, "{v}");
        assert_eq!(token_set_ratio("abc", "xyz"), 0.0);
        let v = token_set_ratio("Halo (Official Video)", "halo live");
        assert!((v - 61.538).abs() < 0.01, "{v}");
    }
}
