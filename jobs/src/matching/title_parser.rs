//! `parse_video_title(title, channel)`: the artist(s), track title and version tags a YouTube
//! video title states, so a catalogue can be searched by field rather than by the whole string.
//!
//! Real titles put the parts in many orders and wrappers: "Artist - Title (Official Video)",
//! "Title | Artist", `Artist "Title"`, "Artist 「Title」", "Artist x Artist2 - Title ft. Artist3",
//! "TITLE - ARTIST". The parser works in three passes over the raw text:
//! 1. split at top-level separators (" - ", " – ", " | ", " ~ ", ": "...; never inside brackets or
//!    quotes) and drop the segments that are only tags or packaging ("Official Visualizer");
//! 2. orient the one or two segments left: the channel decides when it names one of them (a
//!    "- Topic" or VEVO channel is the artist's), a quoted part is the title, otherwise the
//!    convention of the separator ("Artist - Title", "Title | Artist");
//! 3. inside each part, brackets are classified: featured credits join the artists, tags and
//!    packaging go, an alias after an artist ("BTS (방탄소년단)") goes, anything else stays.
//!
//! The order is a guess when nothing decides it ("TITLE - ARTIST" from an unknown channel):
//! [`ParsedTitle::swappable`] says so, and the matcher then tries both readings.

use std::sync::LazyLock;

use backbeat_cluster::text_similarity::fold_text;
use regex::Regex;

use super::version_tags::{VersionTag, is_noise, take_tags};

/// What a video title says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedTitle {
    /// Main artist(s) first, then featured ones, as written.
    pub artists: Vec<String>,
    /// The track title without tags, packaging or credits, as written.
    pub title: String,
    /// Version tags, in order of discovery.
    pub tags: Vec<VersionTag>,
    /// Artist and title came from a two-part title whose order nothing confirmed.
    pub swappable: bool,
}

impl ParsedTitle {
    /// Whether any tag marks a different work (cover, karaoke, instrumental, tutorial, reaction).
    pub fn is_derivative(&self) -> bool {
        self.tags.iter().any(VersionTag::is_derivative)
    }
}

/// Lowercase, NFKC, Latin accents stripped, punctuation to single spaces (see `fold_text`).
pub fn normalise(s: &str) -> String {
    fold_text(s)
}

/// Titles longer than this are cut before parsing: YouTube allows 100 characters, so anything
/// longer is not a title, and the regexes stay linear in a bounded input.
const MAX_CHARS: usize = 300;

static SEPARATOR: LazyLock<Regex> =
    // A dash with a space on one side only ("Artist -Title", "Artist- Title") is a separator with
    // a slip of the thumb; a dash between two letters ("Jay-Z", "Anti-Hero") is not.
    LazyLock::new(|| Regex::new(r"\s+[-–—~|:/_]{1,2}\s+|\s*[|｜]\s*|:\s+|\s+[-–—]|[-–—]\s+").expect_static());

static FEATURING: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?:^|\s|\()(?:feat\.?|ft\.?|featuring|with)\s+(.+)$").expect_static());

static ARTIST_JOIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\s+(?:x|×|&|\+|feat\.?|ft\.?|featuring|with|vs\.?)\s+|\s*[,、]\s*|\s+/\s+|\s*×\s*").expect_static()
});

static PRODUCER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)^\s*(?:prod\.?|produced\s+by|from|dir\.?|directed\s+by)\b").expect_static());

trait ExpectStatic {
    fn expect_static(self) -> Regex;
}
impl ExpectStatic for Result<Regex, regex::Error> {
    fn expect_static(self) -> Regex {
        self.expect("static regex")
    }
}

/// A piece of the title between separators, with whether it was quoted.
struct Segment {
    text: String,
    separator_before: Option<char>,
    /// The segment began with "How to play": what follows is the title.
    lesson: bool,
}

static LESSON: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)^\s*(?:how\s+to\s+(?:play|sing)|learn\s+to\s+play)\b").expect_static());

/// Parses a video title; `channel` (the uploader's name) disambiguates when it names the artist.
pub fn parse_video_title(title: &str, channel: Option<&str>) -> ParsedTitle {
    let mut parsed = ParsedTitle::default();
    let text = clip(title);
    let channel_artist = channel.and_then(channel_artist);
    let mut segments = Vec::new();
    for seg in split_segments(&text) {
        let rest = take_tags(&seg.text, false, &mut parsed.tags);
        let folded = fold_text(&rest);
        // A segment that is a tag on its own ("Live", "Nightcore", "Official Visualizer").
        let mut own = Vec::new();
        let rest_own = take_tags(&rest, true, &mut own);
        if folded.is_empty() || is_noise(&folded) || (!own.is_empty() && is_noise(&fold_text(&strip_brackets(&rest_own)))) {
            merge(&mut parsed.tags, own);
            continue;
        }
        segments.push(Segment { lesson: LESSON.is_match(&seg.text), text: rest, separator_before: seg.separator_before });
    }

    // Tags in brackets anywhere decide conventions before the parts are cleaned: cover uploads
    // put the song first ("Creep - Radiohead (Cover)").
    let mut bracket_tags = Vec::new();
    for seg in &segments {
        clean_part(&seg.text, false, &mut bracket_tags);
    }
    let title_first = bracket_tags.contains(&VersionTag::Cover) || parsed.tags.contains(&VersionTag::Cover);
    // A plain channel named like one side is a hint too ("BAD HABITS - ED SHEERAN" on "Ed Sheeran").
    let hint = channel_artist.clone().or_else(|| channel.map(|c| c.trim().to_string()));
    let (artist_part, title_part) = orient(&mut parsed, segments, hint.as_deref(), channel, title_first);
    let mut artists = Vec::new();
    if let Some(part) = artist_part {
        let (clean, featured) = clean_part(&part, true, &mut parsed.tags);
        artists.extend(split_artists(&clean));
        artists.extend(featured);
    }
    let (title_clean, featured) = clean_part(&title_part, false, &mut parsed.tags);
    // The channel of an artist ("- Topic", VEVO, "Official") names the main artist: first when
    // the title names none or none that is it ("HEART | Liamf t. The Trains" on LiamVEVO, a typo
    // that glued the credit to the name), the title's names kept after it as credits. A channel
    // written without spaces or "The" ("ChainsmokersVEVO") or as initials ("BMTHOfficial") is
    // the title's artist.
    if let Some(a) = channel_artist
        && !artists.iter().any(|n| same_artist(n, &a))
    {
        if artists.is_empty() {
            parsed.swappable = false;
        }
        artists.insert(0, a);
    }
    artists.extend(featured);
    let mut seen = std::collections::HashSet::new();
    artists.retain(|a| !a.is_empty() && seen.insert(fold_text(a)));
    parsed.artists = artists;
    parsed.title = unquote(&title_clean, &mut parsed.tags);
    parsed
}

/// A catalogue title cleaned the way a video's title part is: tag segments ("Song - Remastered
/// 2009", "Song - Live at Wembley") and brackets of tags, packaging and featured credits go, the
/// tags are returned. Unlike [`parse_video_title`] a " - " never splits off an artist: catalogue
/// titles hold only the title.
pub fn clean_title(title: &str) -> (String, Vec<VersionTag>) {
    let mut tags = Vec::new();
    let text = clip(title);
    let mut kept = Vec::new();
    for seg in split_segments(&text) {
        let rest = take_tags(&seg.text, false, &mut tags);
        let mut own = Vec::new();
        let rest_own = take_tags(&rest, true, &mut own);
        let folded = fold_text(&rest);
        if folded.is_empty() || is_noise(&folded) || (!own.is_empty() && is_noise(&fold_text(&strip_brackets(&rest_own)))) {
            merge(&mut tags, own);
            continue;
        }
        kept.push(rest);
    }
    let (clean, _featured) = clean_part(&kept.join(" - "), false, &mut tags);
    let title = unquote(&clean, &mut tags);
    (title, tags)
}

fn clip(title: &str) -> String {
    let mut text: String = title.chars().take(MAX_CHARS).collect::<String>().trim().to_string();
    // A truncated title ("Artist - Long Tit...") keeps what is visible.
    for ellipsis in ["...", "…", ".."] {
        if let Some(stripped) = text.strip_suffix(ellipsis) {
            text = stripped.trim_end().to_string();
        }
    }
    // An opening bracket the cut left unclosed: drop it and what follows.
    let mut depth = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' | '{' | '【' | '（' => depth.push(i),
            ')' | ']' | '}' | '】' | '）' => {
                depth.pop();
            }
            _ => {}
        }
    }
    if let Some(&open) = depth.first() {
        text.truncate(open);
    }
    text.trim().to_string()
}

/// Splits at separators outside brackets and quotes.
fn split_segments(text: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut sep_char = None;
    for m in SEPARATOR.find_iter(text) {
        if nesting_at(text, m.start()) > 0 {
            continue;
        }
        let piece = &text[start..m.start()];
        if !piece.trim().is_empty() {
            out.push(Segment { text: piece.trim().to_string(), separator_before: sep_char, lesson: false });
        }
        sep_char = m.as_str().trim().chars().next().map(|c| if c == '｜' { '|' } else { c }).or(Some(' '));
        start = m.end();
    }
    let piece = &text[start..];
    if !piece.trim().is_empty() {
        out.push(Segment { text: piece.trim().to_string(), separator_before: sep_char, lesson: false });
    }
    out
}

/// How deep in brackets or quotes byte `at` of `text` is.
fn nesting_at(text: &str, at: usize) -> usize {
    let mut depth: usize = 0;
    let mut in_quote = false;
    for (i, c) in text.char_indices() {
        if i >= at {
            break;
        }
        match c {
            '(' | '[' | '{' | '【' | '（' | '「' | '『' | '《' | '“' => depth += 1,
            ')' | ']' | '}' | '】' | '）' | '」' | '』' | '》' | '”' => depth = depth.saturating_sub(1),
            '"' => in_quote = !in_quote,
            _ => {}
        }
    }
    depth + usize::from(in_quote)
}

/// Decides which segment is the artist and which the title.
fn orient(parsed: &mut ParsedTitle, segments: Vec<Segment>, channel_artist: Option<&str>, channel: Option<&str>, title_first: bool) -> (Option<String>, String) {
    let topic = channel.is_some_and(|c| c.trim_end().ends_with("- Topic"));
    match segments.len() {
        0 => (None, String::new()),
        1 => {
            let only = &segments[0].text;
            match (!topic).then(|| quoted(only)).flatten() {
                // What follows the quote ("'Hype Boy' Official MV (Performance ver.1)") holds tags.
                Some((before, inside, after)) => {
                    clean_part(&take_tags(&after, true, &mut parsed.tags), false, &mut parsed.tags);
                    if fold_text(&before).is_empty() { (None, inside) } else { (Some(before), inside) }
                }
                None => (None, only.clone()),
            }
        }
        _ if topic => (None, segments.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" - ")),
        _ => {
            let (a, b) = (segments[0].text.clone(), segments[1].text.clone());
            if let Some(ch) = channel_artist.map(fold_text) {
                let names = |s: &str| split_artists(&clean_part(s, true, &mut Vec::new()).0).iter().map(|n| fold_text(n)).collect::<Vec<_>>();
                if names(&b).contains(&ch) && !names(&a).contains(&ch) {
                    return (Some(b), a);
                }
                if names(&a).contains(&ch) {
                    return (Some(a), b);
                }
                // No side names the channel's artist exactly: the side whose first name is
                // clearly the closer (a typo, "Sommer Ana" on SommerAnjaVEVO) is the artist.
                let closeness = |s: &str| names(s).first().map_or(0.0, |n| strsim::jaro_winkler(n, &ch));
                let (ca, cb) = (closeness(&a), closeness(&b));
                if ca.max(cb) >= 0.85 && (ca - cb).abs() >= 0.1 {
                    return if ca > cb { (Some(a), b) } else { (Some(b), a) };
                }
            }
            // A quoted part is the title: `"Title" - Artist`; so is what "How to play" leads.
            if quoted(&a).is_some_and(|(before, _, _)| fold_text(&before).is_empty()) || segments[0].lesson {
                return (Some(b), a);
            }
            parsed.swappable = true;
            if segments[1].separator_before == Some('|') || title_first { (Some(b), a) } else { (Some(a), b) }
        }
    }
}

/// `Artist "Title"`, `Artist 'Title'`, `Artist「Title」`: the text before the quote, inside it
/// and after it.
fn quoted(text: &str) -> Option<(String, String, String)> {
    static QUOTE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"「([^」]+)」|『([^』]+)』|《([^》]+)》|〈([^〉]+)〉|"([^"]+)"|“([^”]+)”|(?:^|\s)['‘]([^'’]+)['’](?:\s|$|[^\w])"#).expect_static()
    });
    let caps = QUOTE.captures(text)?;
    let inside = caps.iter().skip(1).flatten().next()?.as_str().trim().to_string();
    let whole = caps.get(0)?;
    let before = text[..whole.start()].trim().to_string();
    Some((before, inside, text[whole.end()..].to_string()))
}

/// A title that is a quoted part, maybe followed by tags ("'Shut Down' DANCE PRACTICE VIDEO"):
/// the quoted part, the tags recorded.
fn unquote(s: &str, tags: &mut Vec<VersionTag>) -> String {
    let t = s.trim();
    if let Some((before, inside, after)) = quoted(t).filter(|(before, _, _)| before.is_empty()) {
        let mut own = Vec::new();
        let rest = take_tags(&after, true, &mut own);
        if is_noise(&fold_text(&rest)) {
            merge(tags, own);
            return inside;
        }
        let _ = before;
    }
    t.to_string()
}

/// Cleans one part: brackets classified (featured credits returned, tags recorded, aliases and
/// packaging dropped), an unbracketed featuring credit split off, spaces collapsed.
fn clean_part(part: &str, is_artist: bool, tags: &mut Vec<VersionTag>) -> (String, Vec<String>) {
    static BRACKET: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[(\[{【（]([^)\]}】）]*)[)\]}】）]").expect_static());
    let mut featured = Vec::new();
    let mut kept = String::new();
    let mut last = 0;
    for caps in BRACKET.captures_iter(part) {
        let whole = caps.get(0).expect("group 0");
        kept.push_str(&part[last..whole.start()]);
        kept.push(' ');
        last = whole.end();
        let inner = caps[1].trim();
        if let Some(f) = FEATURING.captures(inner).filter(|c| c.get(0).is_some_and(|m| m.start() == 0)) {
            featured.extend(split_artists(&f[1]));
            continue;
        }
        let mut own = Vec::new();
        let rest = take_tags(inner, true, &mut own);
        let folded = fold_text(&rest);
        let is_tag_or_noise = !own.is_empty() || is_noise(&folded);
        merge(tags, own);
        // Credits, an artist's alias, and a title's name in another script ("(강남스타일)").
        if PRODUCER.is_match(inner) || is_artist || (!has_latin(inner) && has_latin(part)) {
            continue;
        }
        if !is_tag_or_noise {
            kept.push_str(inner);
            kept.push(' ');
        }
    }
    kept.push_str(&part[last..]);
    let mut text = kept;
    if let Some(f) = FEATURING.captures(&text) {
        let at = f.get(0).expect("group 0").start();
        // "with" only counts inside brackets: "Dancing with Myself" is a title.
        if !f[0].trim_start().to_lowercase().starts_with("with") {
            featured.extend(split_artists(&f[1]));
            text.truncate(at);
        }
    }
    let mut words: Vec<&str> = text.split_whitespace().collect();
    if is_artist && words.iter().any(|w| has_latin(w)) {
        // "aespa 에스파": the name in a second script is an alias.
        words.retain(|w| has_latin(w) || !w.chars().any(char::is_alphabetic));
    }
    // Resolution badges outside brackets: "Zombie (Official Music Video) 4K".
    while words.last().is_some_and(|w| is_badge(w)) {
        words.pop();
    }
    (words.join(" "), featured)
}

fn is_latin_letter(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}')
}

fn has_latin(s: &str) -> bool {
    s.chars().any(is_latin_letter)
}

fn is_badge(word: &str) -> bool {
    matches!(word.to_ascii_lowercase().as_str(), "4k" | "8k" | "hd" | "hq" | "uhd" | "1080p" | "720p" | "60fps")
}

fn strip_brackets(s: &str) -> String {
    clean_part(s, true, &mut Vec::new()).0
}

/// "A x B & C, D feat. E" → [A, B, C, D, E].
fn split_artists(s: &str) -> Vec<String> {
    ARTIST_JOIN
        .split(s)
        .map(|a| a.trim().trim_matches(|c: char| c == '"' || c == '\'').trim().to_string())
        .filter(|a| !fold_text(a).is_empty())
        .collect()
}

/// The artist a channel name states: "Artist - Topic", "ArtistVEVO" (camel case split),
/// "Artist Official". Other channels (labels, lyric channels) state none.
fn channel_artist(channel: &str) -> Option<String> {
    let c = channel.trim();
    if let Some(name) = c.strip_suffix("- Topic") {
        return Some(name.trim().to_string()).filter(|n| !n.is_empty());
    }
    if let Some(name) = c.strip_suffix("VEVO").or_else(|| c.strip_suffix("Vevo")) {
        let mut out = String::new();
        let mut prev: Option<char> = None;
        for ch in name.trim().chars() {
            // "LenaSommer" and "サマーCollective": a capital after a small letter, or a change
            // between Latin letters and another script, starts a word.
            let script_change = prev.is_some_and(|p| p.is_alphabetic() && ch.is_alphabetic() && latin(p) != latin(ch));
            if (ch.is_uppercase() && prev.is_some_and(|p| p.is_lowercase())) || script_change {
                out.push(' ');
            }
            out.push(ch);
            prev = Some(ch);
        }
        return Some(out.trim().to_string()).filter(|n| !n.is_empty());
    }
    for suffix in [" Official", "Official", " official", " Oficial"] {
        if let Some(name) = c.strip_suffix(suffix) {
            return Some(name.trim().to_string()).filter(|n| !n.is_empty());
        }
    }
    None
}

/// Whether a channel's artist `channel` names `artist`: equal once folded without spaces and a
/// leading "the", or its initials.
fn same_artist(artist: &str, channel: &str) -> bool {
    let words = |s: &str| -> Vec<String> {
        let folded = fold_text(s);
        let mut w: Vec<String> = folded.split(' ').filter(|w| !w.is_empty()).map(str::to_string).collect();
        if w.len() > 1 && w[0] == "the" {
            w.remove(0);
        }
        w
    };
    let (a, c) = (words(artist), words(channel));
    let c = c.concat();
    a.concat() == c || (a.len() > 1 && a.iter().filter_map(|w| w.chars().next()).collect::<String>() == c)
}

/// A letter of the Latin script, accented ones included ("Íñigo", "Björn" are one word).
fn latin(c: char) -> bool {
    c.is_ascii_alphabetic() || matches!(c, '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}')
}

fn merge(tags: &mut Vec<VersionTag>, more: Vec<VersionTag>) {
    for t in more {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(title: &str, channel: Option<&str>, artists: &[&str], track: &str) {
        let p = parse_video_title(title, channel);
        let got: Vec<String> = p.artists.iter().map(|a| normalise(a)).collect();
        let want: Vec<String> = artists.iter().map(|a| normalise(a)).collect();
        assert_eq!((got, normalise(&p.title)), (want, normalise(track)), "{title:?} parsed as {p:?}");
    }

    #[test]
    fn common_shapes() {
        check("Adele - Hello (Official Music Video)", None, &["Adele"], "Hello");
        check("BLINDING LIGHTS | The Weeknd", None, &["The Weeknd"], "Blinding Lights");
        check("Calvin Harris x Dua Lipa - One Kiss ft. Someone", None, &["Calvin Harris", "Dua Lipa", "Someone"], "One Kiss");
        check("YOASOBI「アイドル」 Official Music Video", None, &["YOASOBI"], "アイドル");
        check("BTS (방탄소년단) 'Dynamite' Official MV", None, &["BTS"], "Dynamite");
        check("Hello", Some("Adele - Topic"), &["Adele"], "Hello");
        check("HELLO - ADELE", Some("AdeleVEVO"), &["Adele"], "Hello");
        check("HEART | Liamf t. The Trains", Some("LiamVEVO"), &["Liam", "Liamf t. The Trains"], "HEART");
        check("Sommer Ana - Über Straße", Some("SommerAnjaVEVO"), &["Sommer Anja", "Sommer Ana"], "Über Straße");
        // The title's own reading loses the kana word; the channel's artist comes first.
        check("サマー Collective - ダンス君", Some("サマーCollectiveVEVO"), &["サマー Collective", "Collective"], "ダンス君");
        check("JAY-Z - Empire State of Mind", Some("JAYZVEVO"), &["JAY-Z"], "Empire State of Mind");
        check("Íñigo Locura - Fuego (Official Music Video)", Some("ÍñigoLocuraVEVO"), &["Íñigo Locura"], "Fuego");
        check("DIE WELT | Björn ft. Max", Some("BjörnVEVO"), &["Björn", "Max"], "DIE WELT");
        check("Adele - Hello (Official Vid...", None, &["Adele"], "Hello");
    }

    #[test]
    fn tags_and_derivatives() {
        let p = parse_video_title("Adele - Hello (Karaoke Version)", None);
        assert!(p.is_derivative() && p.tags.contains(&VersionTag::Karaoke), "{p:?}");
        assert_eq!(normalise(&p.title), "hello");
        for (title, song) in [("Oasis - Live Forever", "live forever"), ("Tones and I - Dance Monkey", "dance monkey"), ("Bruce Springsteen - Cover Me", "cover me")] {
            let p = parse_video_title(title, None);
            assert!(p.tags.is_empty() && normalise(&p.title) == song, "{p:?}");
        }
        let p = parse_video_title("", None);
        assert_eq!(p, ParsedTitle::default());
        let long = "la ".repeat(4000);
        assert!(parse_video_title(&long, Some("x")).title.len() <= MAX_CHARS * 4);
    }
}
