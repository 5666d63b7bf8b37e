//! Version tags of a video title ("Live at Wembley", "(Karaoke Version)", "sped up"...): which
//! phrases mean which version, and which words are packaging that says nothing about the song.
//!
//! Two scopes, because many tag words are also ordinary title words: "karaoke", "cover by",
//! "how to play" or "official video" mean a version wherever they stand, while "live", "cover",
//! "remix" or "demo" only do inside brackets or as a segment of their own ("Live Forever" and
//! "Cover Me" are songs).

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::{Regex, RegexSet};

/// What a title says about the version of the recording in the video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum VersionTag {
    OfficialVideo,
    OfficialAudio,
    LyricVideo,
    Visualizer,
    Live,
    Remix,
    Cover,
    Karaoke,
    Instrumental,
    SpedUp,
    Slowed,
    Remaster,
    Acoustic,
    Tutorial,
    Extended,
    RadioEdit,
    Nightcore,
    EightD,
    Demo,
    Reaction,
    Mv,
    Performance,
}

impl VersionTag {
    /// The tag's name in tables: `official_video`, `sped_up`, `8d`...
    pub fn as_str(&self) -> &'static str {
        use VersionTag::*;
        match self {
            OfficialVideo => "official_video",
            OfficialAudio => "official_audio",
            LyricVideo => "lyric_video",
            Visualizer => "visualizer",
            Live => "live",
            Remix => "remix",
            Cover => "cover",
            Karaoke => "karaoke",
            Instrumental => "instrumental",
            SpedUp => "sped_up",
            Slowed => "slowed",
            Remaster => "remaster",
            Acoustic => "acoustic",
            Tutorial => "tutorial",
            Extended => "extended",
            RadioEdit => "radio_edit",
            Nightcore => "nightcore",
            EightD => "8d",
            Demo => "demo",
            Reaction => "reaction",
            Mv => "mv",
            Performance => "performance",
        }
    }

    /// A different work from the catalogue recording, which never carries its ISRC: someone
    /// else's performance (cover, karaoke, tutorial, reaction) or a different mix (instrumental).
    pub fn is_derivative(&self) -> bool {
        matches!(self, VersionTag::Cover | VersionTag::Karaoke | VersionTag::Instrumental | VersionTag::Tutorial | VersionTag::Reaction)
    }

    /// Packaging of the same recording: the official video, audio, lyric video, visualizer, MV.
    pub fn is_packaging(&self) -> bool {
        matches!(self, VersionTag::OfficialVideo | VersionTag::OfficialAudio | VersionTag::LyricVideo | VersionTag::Visualizer | VersionTag::Mv)
    }
}

/// Tag patterns, and the same as one set: a title is scanned once to learn which patterns match
/// (most match none), and only those are run again to cut their phrase out.
struct Patterns {
    set: RegexSet,
    each: Vec<(Regex, VersionTag)>,
}

fn patterns(list: &[(&str, VersionTag)]) -> Patterns {
    // The group matters: without it the word boundaries bound only the first and the last of a
    // pattern's alternatives, and `live\s*$` took the "live" out of "Alive" (the title "Alive" became
    // "A": about 1 in 4 of a sample of 40 items whose recording blocking missed at scale 10).
    let sources: Vec<String> = list.iter().map(|(p, _)| format!(r"(?i)(?:^|\b)(?:{p})(?:\b|$)")).collect();
    Patterns {
        set: RegexSet::new(&sources).expect("static regex set"),
        each: sources.iter().zip(list).map(|(s, (_, t))| (Regex::new(s).expect("static regex"), *t)).collect(),
    }
}

/// Phrases that mean a version wherever they stand.
static ANYWHERE: LazyLock<Patterns> = LazyLock::new(|| {
    use VersionTag::*;
    patterns(&[
        (r"karaok[eê](?:\s+(?:version|with\s+lyrics))?", Karaoke),
        (r"(?:(?:piano|guitar|acoustic|vocal|violin|drum|ukulele|female|male|metal|rock)\s+)?cover(?:ed)?\s+(?:by|version)\b[^()\[\]|]*", Cover),
        (r"(?:piano|guitar|acoustic|vocal|violin|drum|ukulele|female|male|metal|rock)\s+cover", Cover),
        (r"how\s+to\s+play|(?:guitar|piano|ukulele|drum|bass)?\s*(?:tutorial|lesson)s?|chords(?:\s+and\s+lyrics)?", Tutorial),
        (r"instrumental(?:\s+version)?", Instrumental),
        (r"sped[\s\-]*up(?:\s+version)?|speed\s+up|nightcore\s+version", SpedUp),
        (r"slowed(?:\s*(?:\+|and|&)?\s*reverb)?(?:\s+version)?|reverb", Slowed),
        (r"nightcore", Nightcore),
        (r"8d(?:\s+audio)?", EightD),
        (r"reacts?\s+to|reaction|first\s+time\s+(?:hearing|listening(?:\s+to)?|reacting\s+to|watching)", Reaction),
        (r"(?:\d{4}\s+)?(?:digital(?:ly)?\s+)?remaster(?:ed)?(?:\s+(?:\d{4}|version|edition|audio))*", Remaster),
        (r"official\s+(?:music\s+)?video|music\s+video|video\s+oficial|videoclipe?\s+oficial|clipe?\s+oficial|clip\s+officiel", OfficialVideo),
        (r"official\s+audio|audio\s+oficial|official\s+track", OfficialAudio),
        (r"official\s+lyric\s+video|lyrics?\s+video|lyric\s+visuali[sz]er|with\s+lyrics|lyrics?|letras?|paroles|歌詞", LyricVideo),
        (r"(?:official\s+)?visuali[sz]er", Visualizer),
        (r"radio\s+(?:edit|version|mix)", RadioEdit),
        (r"extended\s+(?:mix|version|edit|club\s+mix)", Extended),
        (r"live\s+(?:at|from|in|on|version|performance|session|acoustic)\b[^()\[\]|]*|unplugged|(?:en|ao)\s+vivo|live\s*$", Live),
        (r"(?:official\s+)?m\s*/\s*v|(?:official\s+)?mv|뮤직비디오", Mv),
        (r"(?:dance\s+(?:practice|video|ver(?:sion)?)|choreography(?:\s+ver(?:sion)?)?|performance\s+(?:video|ver(?:sion)?)|stage\s+mix)(?:\s+video)?", Performance),
        (r"acoustic\s+(?:version|session|live)", Acoustic),
    ])
});

/// Words that mean a version only inside brackets or as a segment of their own.
static SEGMENT_ONLY: LazyLock<Patterns> = LazyLock::new(|| {
    use VersionTag::*;
    patterns(&[
        (r"live", Live),
        (r"cover", Cover),
        (r"[\w'.&]*(?:\s+[\w'.&]+)?\s*(?:remix|rmx|bootleg|flip|vip\s+mix)", Remix),
        (r"acoustic(?:\s+version)?", Acoustic),
        (r"demo(?:\s+version)?", Demo),
        (r"audio", OfficialAudio),
        (r"performance", Performance),
        (r"extended", Extended),
        (r"video", OfficialVideo),
    ])
});

/// Words that are packaging and nothing else: a segment made only of these (after its tags are
/// taken out) is dropped.
static NOISE: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    [
        "official", "video", "audio", "music", "hd", "hq", "4k", "8k", "1080p", "720p", "uhd", "full", "song", "version", "new",
        "explicit", "clean", "color", "coded", "out", "now", "premiere", "exclusive", "original", "vevo", "the", "a", "with",
        "and", "mix", "edit", "easy", "beginner", "beginners", "guitar", "piano", "ukulele", "drum", "drums", "bass", "violin",
        "vocal", "vocals", "only", "en", "vivo", "live", "ver", "eng", "sub", "subs", "subtitles", "esp", "kor", "rom", "han",
        "mv", "m", "v", "clip", "officiel", "oficial", "lyric", "lyrics", "visualizer", "visualiser", "topic", "tv", "by",
        "feat", "ft", "remastered", "remaster", "hq audio", "hd audio", "16", "9", "of", "from", "album", "single", "ep",
        "teaser", "trailer", "part", "pt", "in",
    ]
    .into_iter()
    .collect()
});

/// Finds the version tags in `text` and returns them with `text` minus the phrases that said so.
/// `segment` widens the search to the bracket-or-segment-only words.
pub fn take_tags(text: &str, segment: bool, tags: &mut Vec<VersionTag>) -> String {
    let mut rest = text.to_string();
    let lists: &[&Patterns] = if segment { &[&ANYWHERE, &SEGMENT_ONLY] } else { &[&ANYWHERE] };
    for list in lists {
        for i in list.set.matches(&rest).into_iter().collect::<Vec<_>>() {
            let (re, tag) = &list.each[i];
            if re.is_match(&rest) {
                if !tags.contains(tag) {
                    tags.push(*tag);
                }
                rest = re.replace_all(&rest, " ").into_owned();
            }
        }
    }
    rest
}

/// Whether `folded` (see `fold_text`) is nothing but packaging words, years and numbers.
pub fn is_noise(folded: &str) -> bool {
    folded.split(' ').filter(|w| !w.is_empty()).all(|w| NOISE.contains(w) || (w.len() == 4 && w.chars().all(|c| c.is_ascii_digit())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn song_words_are_tags_only_in_their_own_segment() {
        let mut tags = Vec::new();
        assert_eq!(take_tags("Live Forever", false, &mut tags).trim(), "Live Forever");
        assert!(tags.is_empty());
        take_tags("Live", true, &mut tags);
        assert_eq!(tags, [VersionTag::Live]);
        let mut tags = Vec::new();
        let rest = take_tags("Title Karaoke Instrumental", false, &mut tags);
        assert_eq!(rest.trim(), "Title");
        assert!(tags.contains(&VersionTag::Karaoke) && tags.contains(&VersionTag::Instrumental));
        let mut tags = Vec::new();
        assert_eq!(take_tags("Alive", false, &mut tags), "Alive");
        assert_eq!(take_tags("Deliver Us", true, &mut tags), "Deliver Us");
        assert!(tags.is_empty(), "{tags:?}");
        assert!(is_noise("official hd video 2011"));
        assert!(!is_noise("wembley"));
    }
}
