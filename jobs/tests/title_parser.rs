//! Tests for the YouTube video title parser (`backbeat_jobs::matching::title_parser`): splitting a
//! video title (and, when known, its channel name) into the track's artists, the track title and
//! version tags.
//!
//! Every case below is hand-written to look like titles found on real YouTube music channels
//! (official artist channels, VEVO, auto-generated "- Topic" channels, K-pop and J-pop labels,
//! lyric / nightcore / 8D / sped-up re-upload channels, karaoke and tutorial channels, reaction
//! channels). None of them comes from the repository's data generator.
//!
//! Comparison rules: the track title is compared after `normalise` on both sides; the artists are
//! compared as an ordered list of `normalise`d names (main artists first, then featured artists);
//! the tags are compared as an unordered set of `VersionTag::as_str` names. So case, accents and
//! punctuation in the expectations below do not matter.
//!
//! Deliberately left out: artists whose own name contains a joiner ("Simon & Garfunkel",
//! "Florence + The Machine", "Earth, Wind & Fire", "Tyler, The Creator", "Jorge & Mateus"). Splitting
//! them is a known ambiguity and either split is acceptable, so they are not asserted here.

use std::collections::BTreeSet;
use std::panic;
use std::time::{Duration, Instant};

use backbeat_jobs::matching::title_parser::{normalise, parse_video_title};

/// One hand-written title and what the parser should make of it.
struct Case {
    /// The video title as shown on YouTube.
    title: &'static str,
    /// The uploading channel's name, when known.
    channel: Option<&'static str>,
    /// Expected artists: main artist(s) first, then featured artists.
    artists: &'static [&'static str],
    /// Expected track title (compared after `normalise`).
    track: &'static str,
    /// Expected version tags (`VersionTag::as_str` names, order-free).
    tags: &'static [&'static str],
}

/// Every name `VersionTag::as_str` may return; guards the expectations below against typos.
const KNOWN_TAGS: &[&str] = &[
    "official_video",
    "official_audio",
    "lyric_video",
    "visualizer",
    "live",
    "remix",
    "cover",
    "karaoke",
    "instrumental",
    "sped_up",
    "slowed",
    "remaster",
    "acoustic",
    "tutorial",
    "extended",
    "radio_edit",
    "nightcore",
    "8d",
    "demo",
    "reaction",
    "mv",
    "performance",
];

static CASES: &[Case] = &[
    // ---------------------------------------------------------------------------------------
    // "Artist - Title (Official Video)" and friends, "Official Music Video" in various spellings
    // ---------------------------------------------------------------------------------------
    Case {
        title: "Rick Astley - Never Gonna Give You Up (Official Music Video)",
        channel: Some("Rick Astley"),
        artists: &["Rick Astley"],
        track: "Never Gonna Give You Up",
        tags: &["official_video"],
    },
    Case {
        title: "Ed Sheeran - Shape of You (Official Music Video)",
        channel: Some("Ed Sheeran"),
        artists: &["Ed Sheeran"],
        track: "Shape of You",
        tags: &["official_video"],
    },
    Case {
        title: "Harry Styles - As It Was (Official Video)",
        channel: Some("Harry Styles"),
        artists: &["Harry Styles"],
        track: "As It Was",
        tags: &["official_video"],
    },
    Case {
        title: "Bring Me The Horizon - Throne (OFFICIAL MUSIC VIDEO)",
        channel: Some("BMTHOfficial"),
        artists: &["Bring Me The Horizon"],
        track: "Throne",
        tags: &["official_video"],
    },
    Case {
        title: "girl in red - we fell in love in october (official music video)",
        channel: None,
        artists: &["girl in red"],
        track: "we fell in love in october",
        tags: &["official_video"],
    },
    Case {
        title: "Avril Lavigne - Complicated - Official Music Video",
        channel: None,
        artists: &["Avril Lavigne"],
        track: "Complicated",
        tags: &["official_video"],
    },
    Case {
        title: "Måneskin - Beggin' | Official Music Video",
        channel: Some("Måneskin"),
        artists: &["Måneskin"],
        track: "Beggin'",
        tags: &["official_video"],
    },
    Case {
        title: "Rammstein - Du Hast (Official 4K Video)",
        channel: Some("Rammstein Official"),
        artists: &["Rammstein"],
        track: "Du Hast",
        tags: &["official_video"],
    },
    Case {
        title: "Shakira - Hips Don't Lie (Official 4K Video) ft. Wyclef Jean",
        channel: Some("shakiraVEVO"),
        artists: &["Shakira", "Wyclef Jean"],
        track: "Hips Don't Lie",
        tags: &["official_video"],
    },
    Case {
        title: "Mark Ronson - Uptown Funk (Official Video) ft. Bruno Mars",
        channel: Some("Mark Ronson"),
        artists: &["Mark Ronson", "Bruno Mars"],
        track: "Uptown Funk",
        tags: &["official_video"],
    },
    Case {
        title: "Guns N' Roses - Sweet Child O' Mine (Official Music Video)",
        channel: Some("Guns N' Roses"),
        artists: &["Guns N' Roses"],
        track: "Sweet Child O' Mine",
        tags: &["official_video"],
    },
    Case {
        title: "U2 - With Or Without You (Official Music Video)",
        channel: Some("U2"),
        artists: &["U2"],
        track: "With Or Without You",
        tags: &["official_video"],
    },
    Case {
        title: "Billy Idol - Dancing With Myself (Official Music Video)",
        channel: None,
        artists: &["Billy Idol"],
        track: "Dancing With Myself",
        tags: &["official_video"],
    },
    Case {
        title: "JAY-Z - Empire State Of Mind ft. Alicia Keys",
        channel: Some("JAYZVEVO"),
        artists: &["JAY-Z", "Alicia Keys"],
        track: "Empire State Of Mind",
        tags: &[],
    },
    Case {
        title: "XXXTENTACION - SAD! (Official Music Video)",
        channel: Some("XXXTENTACION"),
        artists: &["XXXTENTACION"],
        track: "SAD!",
        tags: &["official_video"],
    },
    Case {
        title: "ABBA - Gimme! Gimme! Gimme! (A Man After Midnight)",
        channel: Some("ABBA"),
        artists: &["ABBA"],
        track: "Gimme! Gimme! Gimme! (A Man After Midnight)",
        tags: &[],
    },
    // ---------------------------------------------------------------------------------------
    // "Artist - Title [Official Audio]", visualizers
    // ---------------------------------------------------------------------------------------
    Case {
        title: "Taylor Swift - Cruel Summer [Official Audio]",
        channel: Some("Taylor Swift"),
        artists: &["Taylor Swift"],
        track: "Cruel Summer",
        tags: &["official_audio"],
    },
    Case {
        title: "Daft Punk — Get Lucky (Official Audio) ft. Pharrell Williams, Nile Rodgers",
        channel: Some("Daft Punk"),
        artists: &["Daft Punk", "Pharrell Williams", "Nile Rodgers"],
        track: "Get Lucky",
        tags: &["official_audio"],
    },
    Case {
        title: "Miyagi & Andy Panda - Kosandra (Official Audio)",
        channel: None,
        artists: &["Miyagi", "Andy Panda"],
        track: "Kosandra",
        tags: &["official_audio"],
    },
    Case {
        // Unsure: bare "(Audio)" taken as official_audio.
        title: "The Weeknd - Save Your Tears (Audio)",
        channel: Some("TheWeekndVEVO"),
        artists: &["The Weeknd"],
        track: "Save Your Tears",
        tags: &["official_audio"],
    },
    Case {
        title: "Post Malone - Chemical | Official Visualizer",
        channel: Some("PostMaloneVEVO"),
        artists: &["Post Malone"],
        track: "Chemical",
        tags: &["visualizer"],
    },
    Case {
        title: "Olivia Rodrigo - vampire (Official Visualiser)",
        channel: None,
        artists: &["Olivia Rodrigo"],
        track: "vampire",
        tags: &["visualizer"],
    },
    // ---------------------------------------------------------------------------------------
    // Featured artists: ft. / feat. / featuring / with / x / × / & / ,
    // ---------------------------------------------------------------------------------------
    Case {
        title: "Luis Fonsi - Despacito ft. Daddy Yankee",
        channel: Some("LuisFonsiVEVO"),
        artists: &["Luis Fonsi", "Daddy Yankee"],
        track: "Despacito",
        tags: &[],
    },
    Case {
        title: "Gotye - Somebody That I Used To Know (feat. Kimbra) [Official Music Video]",
        channel: Some("gotyemusic"),
        artists: &["Gotye", "Kimbra"],
        track: "Somebody That I Used To Know",
        tags: &["official_video"],
    },
    Case {
        title: "DJ Snake - Taki Taki ft. Selena Gomez, Ozuna, Cardi B (Official Music Video)",
        channel: Some("DJSnakeVEVO"),
        artists: &["DJ Snake", "Selena Gomez", "Ozuna", "Cardi B"],
        track: "Taki Taki",
        tags: &["official_video"],
    },
    Case {
        title: "Major Lazer & DJ Snake - Lean On (feat. MØ) (Official Music Video)",
        channel: Some("Major Lazer Official"),
        artists: &["Major Lazer", "DJ Snake", "MØ"],
        track: "Lean On",
        tags: &["official_video"],
    },
    Case {
        title: "Rudimental - These Days feat. Jess Glynne, Macklemore & Dan Caplen [Official Video]",
        channel: Some("Rudimental"),
        artists: &["Rudimental", "Jess Glynne", "Macklemore", "Dan Caplen"],
        track: "These Days",
        tags: &["official_video"],
    },
    Case {
        title: "Meduza x Becky Hill - Lose Control ft. Goodboys (Official Video)",
        channel: None,
        artists: &["Meduza", "Becky Hill", "Goodboys"],
        track: "Lose Control",
        tags: &["official_video"],
    },
    Case {
        title: "Marshmello x Jonas Brothers - Leave Before You Love Me (Official Video)",
        channel: Some("Marshmello"),
        artists: &["Marshmello", "Jonas Brothers"],
        track: "Leave Before You Love Me",
        tags: &["official_video"],
    },
    Case {
        title: "Marshmello × Anne-Marie - FRIENDS (Official Video)",
        channel: Some("Marshmello"),
        artists: &["Marshmello", "Anne-Marie"],
        track: "FRIENDS",
        tags: &["official_video"],
    },
    Case {
        title: "Tiësto x Tate McRae - 10:35 (Official Music Video)",
        channel: Some("Tiësto"),
        artists: &["Tiësto", "Tate McRae"],
        track: "10:35",
        tags: &["official_video"],
    },
    Case {
        title: "Cardi B, Bad Bunny & J Balvin - I Like It [Official Music Video]",
        channel: Some("Cardi B"),
        artists: &["Cardi B", "Bad Bunny", "J Balvin"],
        track: "I Like It",
        tags: &["official_video"],
    },
    Case {
        title: "Lil Nas X, Jack Harlow - INDUSTRY BABY (Official Video)",
        channel: Some("LilNasXVEVO"),
        artists: &["Lil Nas X", "Jack Harlow"],
        track: "INDUSTRY BABY",
        tags: &["official_video"],
    },
    Case {
        title: "Sam Smith, Kim Petras - Unholy (Official Music Video)",
        channel: Some("SamSmithVEVO"),
        artists: &["Sam Smith", "Kim Petras"],
        track: "Unholy",
        tags: &["official_video"],
    },
    Case {
        title: "Wiz Khalifa - See You Again (featuring Charlie Puth) [Official Video]",
        channel: Some("Wiz Khalifa"),
        artists: &["Wiz Khalifa", "Charlie Puth"],
        track: "See You Again",
        tags: &["official_video"],
    },
    Case {
        title: "Jax Jones - You Don't Know Me ft. RAYE (Official Video)",
        channel: Some("JaxJonesVEVO"),
        artists: &["Jax Jones", "RAYE"],
        track: "You Don't Know Me",
        tags: &["official_video"],
    },
    Case {
        title: "Marshmello - Happier (with Bastille)",
        channel: None,
        artists: &["Marshmello", "Bastille"],
        track: "Happier",
        tags: &[],
    },
    Case {
        title: "Daddy Yankee & Snow - Con Calma (Video Oficial)",
        channel: Some("Daddy Yankee"),
        artists: &["Daddy Yankee", "Snow"],
        track: "Con Calma",
        tags: &["official_video"],
    },
    // ---------------------------------------------------------------------------------------
    // Lyrics uploads: "Artist - Title (feat. X) [Lyrics]", "(Lyric Video)", "(Lyric)"
    // ---------------------------------------------------------------------------------------
    Case {
        title: "Calvin Harris - This Is What You Came For (feat. Rihanna) [Lyrics]",
        channel: Some("7clouds"),
        artists: &["Calvin Harris", "Rihanna"],
        track: "This Is What You Came For",
        tags: &["lyric_video"],
    },
    Case {
        title: "Sia - Cheap Thrills (feat. Sean Paul) (Lyrics)",
        channel: Some("Vibe Music"),
        artists: &["Sia", "Sean Paul"],
        track: "Cheap Thrills",
        tags: &["lyric_video"],
    },
    Case {
        title: "Eminem - Love The Way You Lie ft. Rihanna (Lyrics)",
        channel: None,
        artists: &["Eminem", "Rihanna"],
        track: "Love The Way You Lie",
        tags: &["lyric_video"],
    },
    Case {
        title: "Post Malone - Circles (Lyrics)",
        channel: Some("Taj Tracks"),
        artists: &["Post Malone"],
        track: "Circles",
        tags: &["lyric_video"],
    },
    Case {
        title: "The Chainsmokers - Closer (Lyric) ft. Halsey",
        channel: Some("ChainsmokersVEVO"),
        artists: &["The Chainsmokers", "Halsey"],
        track: "Closer",
        tags: &["lyric_video"],
    },
    Case {
        // Unsure: "Official Lyric Video" taken as lyric_video only, not also official_video.
        title: "Taylor Swift - Anti-Hero (Official Lyric Video)",
        channel: Some("Taylor Swift"),
        artists: &["Taylor Swift"],
        track: "Anti-Hero",
        tags: &["lyric_video"],
    },
    Case {
        title: "Lewis Capaldi - Before You Go (Lyrics / Lyric Video)",
        channel: Some("Lyrics Hub"),
        artists: &["Lewis Capaldi"],
        track: "Before You Go",
        tags: &["lyric_video"],
    },
    // ---------------------------------------------------------------------------------------
    // "Title | Artist"
    // ---------------------------------------------------------------------------------------
    Case {
        title: "Heat Waves | Glass Animals (Lyrics)",
        channel: Some("Dan Music"),
        artists: &["Glass Animals"],
        track: "Heat Waves",
        tags: &["lyric_video"],
    },
    Case {
        title: "Bohemian Rhapsody | Queen",
        channel: None,
        artists: &["Queen"],
        track: "Bohemian Rhapsody",
        tags: &[],
    },
    Case {
        title: "Ocean Eyes | Billie Eilish",
        channel: Some("Chill Nation"),
        artists: &["Billie Eilish"],
        track: "Ocean Eyes",
        tags: &[],
    },
    // ---------------------------------------------------------------------------------------
    // Title first, artist second: only resolvable through the channel name
    // ---------------------------------------------------------------------------------------
    Case {
        title: "BAD HABITS - ED SHEERAN",
        channel: Some("Ed Sheeran"),
        artists: &["Ed Sheeran"],
        track: "Bad Habits",
        tags: &[],
    },
    Case {
        title: "LUCID DREAMS - JUICE WRLD",
        channel: Some("Juice WRLD"),
        artists: &["Juice WRLD"],
        track: "Lucid Dreams",
        tags: &[],
    },
    Case {
        title: "SICKO MODE - TRAVIS SCOTT ft. DRAKE",
        channel: Some("TravisScottVEVO"),
        artists: &["Travis Scott", "Drake"],
        track: "Sicko Mode",
        tags: &[],
    },
    Case {
        title: "Numb [Official Music Video] - Linkin Park",
        channel: Some("Linkin Park"),
        artists: &["Linkin Park"],
        track: "Numb",
        tags: &["official_video"],
    },
    Case {
        title: "In The End [Official HD Music Video] - Linkin Park",
        channel: Some("Linkin Park"),
        artists: &["Linkin Park"],
        track: "In The End",
        tags: &["official_video"],
    },
    // ---------------------------------------------------------------------------------------
    // Quoted titles: Artist "Title", Artist 'Title' (K-pop style, aliases in brackets dropped)
    // ---------------------------------------------------------------------------------------
    Case {
        title: "BTS (방탄소년단) 'Dynamite' Official MV",
        channel: Some("HYBE LABELS"),
        artists: &["BTS"],
        track: "Dynamite",
        tags: &["mv"],
    },
    Case {
        title: "BTS (방탄소년단) 'Dynamite' Official MV (Choreography ver.)",
        channel: Some("HYBE LABELS"),
        artists: &["BTS"],
        track: "Dynamite",
        tags: &["mv", "performance"],
    },
    Case {
        title: "SEVENTEEN (세븐틴) 'HOT' Official MV",
        channel: Some("HYBE LABELS"),
        artists: &["SEVENTEEN"],
        track: "HOT",
        tags: &["mv"],
    },
    Case {
        title: r#"TWICE "FANCY" M/V"#,
        channel: Some("JYP Entertainment"),
        artists: &["TWICE"],
        track: "FANCY",
        tags: &["mv"],
    },
    Case {
        title: r#"ITZY "WANNABE" Dance Practice"#,
        channel: Some("ITZY"),
        artists: &["ITZY"],
        track: "WANNABE",
        tags: &["performance"],
    },
    Case {
        title: "BLACKPINK - 'How You Like That' M/V",
        channel: Some("BLACKPINK"),
        artists: &["BLACKPINK"],
        track: "How You Like That",
        tags: &["mv"],
    },
    Case {
        title: "BLACKPINK - 'Shut Down' DANCE PRACTICE VIDEO",
        channel: Some("BLACKPINK"),
        artists: &["BLACKPINK"],
        track: "Shut Down",
        tags: &["performance"],
    },
    Case {
        title: "BLACKPINK - 'Pink Venom' M/V 🖤",
        channel: Some("BLACKPINK"),
        artists: &["BLACKPINK"],
        track: "Pink Venom",
        tags: &["mv"],
    },
    Case {
        title: r#"Foo Fighters "Everlong" (Live At Wembley Stadium, 2008)"#,
        channel: Some("foofightersVEVO"),
        artists: &["Foo Fighters"],
        track: "Everlong",
        tags: &["live"],
    },
    Case {
        title: "Jung Kook - Seven (feat. Latto) (Performance Video)",
        channel: Some("HYBE LABELS"),
        artists: &["Jung Kook", "Latto"],
        track: "Seven",
        tags: &["performance"],
    },
    Case {
        // Unsure: the Korean alias after the *title* is also dropped.
        title: "PSY - GANGNAM STYLE(강남스타일) M/V",
        channel: Some("officialpsy"),
        artists: &["PSY"],
        track: "GANGNAM STYLE",
        tags: &["mv"],
    },
    Case {
        // Unsure: alternate-script alias without brackets ("aespa 에스파") dropped.
        title: "aespa 에스파 'Next Level' MV",
        channel: Some("SMTOWN"),
        artists: &["aespa"],
        track: "Next Level",
        tags: &["mv"],
    },
    Case {
        // Unsure: leading "[MV]", "_" as the separator, alias after the title dropped.
        title: "[MV] IU(아이유) _ Blueming(블루밍)",
        channel: Some("1theK (원더케이)"),
        artists: &["IU"],
        track: "Blueming",
        tags: &["mv"],
    },
    Case {
        // Unsure: "(Performance ver.1)" after "Official MV" gives both mv and performance.
        title: "NewJeans (뉴진스) 'Hype Boy' Official MV (Performance ver.1)",
        channel: Some("HYBE LABELS"),
        artists: &["NewJeans"],
        track: "Hype Boy",
        tags: &["mv", "performance"],
    },
    // ---------------------------------------------------------------------------------------
    // Japanese: 「」 『』 【】 full-width brackets
    // ---------------------------------------------------------------------------------------
    Case {
        title: "YOASOBI「アイドル」 Official Music Video",
        channel: Some("Ayase / YOASOBI"),
        artists: &["YOASOBI"],
        track: "アイドル",
        tags: &["official_video"],
    },
    Case {
        title: "YOASOBI「夜に駆ける」 Official Music Video",
        channel: Some("Ayase / YOASOBI"),
        artists: &["YOASOBI"],
        track: "夜に駆ける",
        tags: &["official_video"],
    },
    Case {
        title: "米津玄師 MV「Lemon」",
        channel: Some("米津玄師"),
        artists: &["米津玄師"],
        track: "Lemon",
        tags: &["mv"],
    },
    Case {
        title: "ずっと真夜中でいいのに。『秒針を噛む』MV",
        channel: Some("ZUTOMAYO"),
        artists: &["ずっと真夜中でいいのに。"],
        track: "秒針を噛む",
        tags: &["mv"],
    },
    Case {
        title: "Creepy Nuts『Bling‐Bang‐Bang‐Born』MV",
        channel: Some("Creepy Nuts"),
        artists: &["Creepy Nuts"],
        track: "Bling-Bang-Bang-Born",
        tags: &["mv"],
    },
    Case {
        // "Official" is part of the band's name and must survive.
        title: "Official髭男dism - Pretender［Official Video］",
        channel: Some("Official髭男dism"),
        artists: &["Official髭男dism"],
        track: "Pretender",
        tags: &["official_video"],
    },
    Case {
        title: "あいみょん - マリーゴールド【OFFICIAL MUSIC VIDEO】",
        channel: Some("あいみょん"),
        artists: &["あいみょん"],
        track: "マリーゴールド",
        tags: &["official_video"],
    },
    Case {
        title: "King Gnu - 白日",
        channel: Some("King Gnu official YouTube channel"),
        artists: &["King Gnu"],
        track: "白日",
        tags: &[],
    },
    Case {
        // Unsure: "MUSIC VIDEO" without "Official" taken as official_video.
        title: "Aimer『残響散歌』MUSIC VIDEO",
        channel: Some("Aimer Official YouTube Channel"),
        artists: &["Aimer"],
        track: "残響散歌",
        tags: &["official_video"],
    },
    // ---------------------------------------------------------------------------------------
    // Cyrillic
    // ---------------------------------------------------------------------------------------
    Case {
        title: "Баста - Сансара",
        channel: Some("Баста"),
        artists: &["Баста"],
        track: "Сансара",
        tags: &[],
    },
    Case {
        title: "Земфира — Хочешь?",
        channel: None,
        artists: &["Земфира"],
        track: "Хочешь",
        tags: &[],
    },
    Case {
        title: "Руки Вверх - Крошка моя (Official Video)",
        channel: Some("Руки Вверх"),
        artists: &["Руки Вверх"],
        track: "Крошка моя",
        tags: &["official_video"],
    },
    Case {
        // "и" (and) inside a band name is not a joiner.
        title: "Король и Шут - Лесник (Live)",
        channel: None,
        artists: &["Король и Шут"],
        track: "Лесник",
        tags: &["live"],
    },
    Case {
        title: "Мот feat. Ани Лорак - Сопрано",
        channel: Some("Black Star"),
        artists: &["Мот", "Ани Лорак"],
        track: "Сопрано",
        tags: &[],
    },
    Case {
        title: "Ленинград — Экспонат",
        channel: Some("Ленинград"),
        artists: &["Ленинград"],
        track: "Экспонат",
        tags: &[],
    },
    // ---------------------------------------------------------------------------------------
    // Spanish / Portuguese / French, accents
    // ---------------------------------------------------------------------------------------
    Case {
        title: "ROSALÍA - DESPECHÁ (Official Video)",
        channel: Some("ROSALÍA"),
        artists: &["Rosalía"],
        track: "Despechá",
        tags: &["official_video"],
    },
    Case {
        title: "Bad Bunny x Jhay Cortez - Dákiti (Video Oficial)",
        channel: Some("Bad Bunny"),
        artists: &["Bad Bunny", "Jhay Cortez"],
        track: "Dákiti",
        tags: &["official_video"],
    },
    Case {
        title: "Maná - Labios Compartidos (Video Oficial)",
        channel: Some("Maná"),
        artists: &["Maná"],
        track: "Labios Compartidos",
        tags: &["official_video"],
    },
    Case {
        title: "KAROL G, Shakira - TQG (Official Video)",
        channel: Some("KAROL G"),
        artists: &["Karol G", "Shakira"],
        track: "TQG",
        tags: &["official_video"],
    },
    Case {
        title: "Anitta - Envolver (Official Music Video)",
        channel: Some("Anitta"),
        artists: &["Anitta"],
        track: "Envolver",
        tags: &["official_video"],
    },
    Case {
        title: "Édith Piaf - La Vie En Rose",
        channel: None,
        artists: &["Édith Piaf"],
        track: "La Vie En Rose",
        tags: &[],
    },
    Case {
        // Unsure: Spanish "En Vivo" recognised as live.
        title: "Vicente Fernández - Volver Volver (En Vivo)",
        channel: Some("Vicente Fernández"),
        artists: &["Vicente Fernández"],
        track: "Volver Volver",
        tags: &["live"],
    },
    Case {
        // Unsure: Portuguese "Ao Vivo" recognised as live.
        title: "Marília Mendonça - Infiel (Ao Vivo)",
        channel: Some("Marília Mendonça"),
        artists: &["Marília Mendonça"],
        track: "Infiel",
        tags: &["live"],
    },
    Case {
        // Unsure: Portuguese "Clipe Oficial" recognised as official_video.
        title: "Jão - Idiota (Clipe Oficial)",
        channel: Some("Jão"),
        artists: &["Jão"],
        track: "Idiota",
        tags: &["official_video"],
    },
    Case {
        // Unsure: French "Clip officiel" recognised as official_video.
        title: "Aya Nakamura - Djadja (Clip officiel)",
        channel: Some("Aya Nakamura"),
        artists: &["Aya Nakamura"],
        track: "Djadja",
        tags: &["official_video"],
    },
    // ---------------------------------------------------------------------------------------
    // "- Topic" channels: the title is only the track title
    // ---------------------------------------------------------------------------------------
    Case {
        title: "Blinding Lights",
        channel: Some("The Weeknd - Topic"),
        artists: &["The Weeknd"],
        track: "Blinding Lights",
        tags: &[],
    },
    Case {
        title: "Mr. Brightside",
        channel: Some("The Killers - Topic"),
        artists: &["The Killers"],
        track: "Mr. Brightside",
        tags: &[],
    },
    Case {
        title: "Don't Stop Me Now - Remastered 2011",
        channel: Some("Queen - Topic"),
        artists: &["Queen"],
        track: "Don't Stop Me Now",
        tags: &["remaster"],
    },
    Case {
        title: "Dreams - 2004 Remaster",
        channel: Some("Fleetwood Mac - Topic"),
        artists: &["Fleetwood Mac"],
        track: "Dreams",
        tags: &["remaster"],
    },
    Case {
        title: "Live Forever (Live at Knebworth, 10 August '96)",
        channel: Some("Oasis - Topic"),
        artists: &["Oasis"],
        track: "Live Forever",
        tags: &["live"],
    },
    Case {
        title: "Radio Ga Ga (Live At Wembley '86)",
        channel: Some("Queen - Topic"),
        artists: &["Queen"],
        track: "Radio Ga Ga",
        tags: &["live"],
    },
    Case {
        title: "I Don't Care (with Justin Bieber)",
        channel: Some("Ed Sheeran - Topic"),
        artists: &["Ed Sheeran", "Justin Bieber"],
        track: "I Don't Care",
        tags: &[],
    },
    Case {
        title: "Lean On (feat. MØ & DJ Snake)",
        channel: Some("Major Lazer - Topic"),
        artists: &["Major Lazer", "MØ", "DJ Snake"],
        track: "Lean On",
        tags: &[],
    },
    Case {
        title: "Kill Bill (Sped Up Version)",
        channel: Some("SZA - Topic"),
        artists: &["SZA"],
        track: "Kill Bill",
        tags: &["sped_up"],
    },
    Case {
        title: "Levels - Radio Edit",
        channel: Some("Avicii - Topic"),
        artists: &["Avicii"],
        track: "Levels",
        tags: &["radio_edit"],
    },
    Case {
        title: "Blinding Lights - Chromatics Remix",
        channel: Some("The Weeknd - Topic"),
        artists: &["The Weeknd"],
        track: "Blinding Lights",
        tags: &["remix"],
    },
    Case {
        title: "Mercy (Acoustic Version)",
        channel: Some("Shawn Mendes - Topic"),
        artists: &["Shawn Mendes"],
        track: "Mercy",
        tags: &["acoustic"],
    },
    Case {
        title: "夜に駆ける",
        channel: Some("YOASOBI - Topic"),
        artists: &["YOASOBI"],
        track: "夜に駆ける",
        tags: &[],
    },
    Case {
        title: "Tití Me Preguntó",
        channel: Some("Bad Bunny - Topic"),
        artists: &["Bad Bunny"],
        track: "Tití Me Preguntó",
        tags: &[],
    },
    // ---------------------------------------------------------------------------------------
    // VEVO channels: artist from the title when it has a separator, else from the channel
    // ---------------------------------------------------------------------------------------
    Case {
        title: "Lady Gaga - Bad Romance (Official Music Video)",
        channel: Some("LadyGagaVEVO"),
        artists: &["Lady Gaga"],
        track: "Bad Romance",
        tags: &["official_video"],
    },
    Case {
        title: "Hello (Official Music Video)",
        channel: Some("AdeleVEVO"),
        artists: &["Adele"],
        track: "Hello",
        tags: &["official_video"],
    },
    Case {
        title: "Blinding Lights (Official Video)",
        channel: Some("TheWeekndVEVO"),
        artists: &["The Weeknd"],
        track: "Blinding Lights",
        tags: &["official_video"],
    },
    Case {
        title: "Someone You Loved",
        channel: Some("LewisCapaldiVEVO"),
        artists: &["Lewis Capaldi"],
        track: "Someone You Loved",
        tags: &[],
    },
    Case {
        // Unsure: lower-case "Vevo" suffix (the real channel is spelt so); the comma is part of
        // the title, not a joiner.
        title: "thank u, next (Official Video)",
        channel: Some("ArianaGrandeVevo"),
        artists: &["Ariana Grande"],
        track: "thank u, next",
        tags: &["official_video"],
    },
    // ---------------------------------------------------------------------------------------
    // Truncated titles
    // ---------------------------------------------------------------------------------------
    Case {
        title: "Fall Out Boy - This Ain't A Scene, It's An Arms Ra...",
        channel: None,
        artists: &["Fall Out Boy"],
        track: "This Ain't A Scene, It's An Arms Ra",
        tags: &[],
    },
    Case {
        title: "My Chemical Romance - Welcome To The Black Par…",
        channel: None,
        artists: &["My Chemical Romance"],
        track: "Welcome To The Black Par",
        tags: &[],
    },
    Case {
        title: "Panic! At The Disco - I Write Sins Not Tragedies…",
        channel: None,
        artists: &["Panic! At The Disco"],
        track: "I Write Sins Not Tragedies",
        tags: &[],
    },
    // ---------------------------------------------------------------------------------------
    // Live / acoustic / remaster / demo
    // ---------------------------------------------------------------------------------------
    Case {
        title: "Adele - Someone Like You (Live at the Royal Albert Hall)",
        channel: Some("AdeleVEVO"),
        artists: &["Adele"],
        track: "Someone Like You",
        tags: &["live"],
    },
    Case {
        title: "Coldplay - Fix You (Live In São Paulo)",
        channel: Some("Coldplay"),
        artists: &["Coldplay"],
        track: "Fix You",
        tags: &["live"],
    },
    Case {
        title: "Ed Sheeran - Thinking Out Loud (Acoustic)",
        channel: None,
        artists: &["Ed Sheeran"],
        track: "Thinking Out Loud",
        tags: &["acoustic"],
    },
    Case {
        title: "Queen – Bohemian Rhapsody (Official Video Remastered)",
        channel: Some("Queen Official"),
        artists: &["Queen"],
        track: "Bohemian Rhapsody",
        tags: &["official_video", "remaster"],
    },
    Case {
        title: "a-ha - Take On Me (Official Video) [Remastered in 4K]",
        channel: Some("a-ha"),
        artists: &["a-ha"],
        track: "Take On Me",
        tags: &["official_video", "remaster"],
    },
    Case {
        title: "Rick Astley - Never Gonna Give You Up (Official Video) (4K Remaster)",
        channel: Some("Rick Astley"),
        artists: &["Rick Astley"],
        track: "Never Gonna Give You Up",
        tags: &["official_video", "remaster"],
    },
    Case {
        title: "The Beatles - Let It Be (Remastered 2009)",
        channel: None,
        artists: &["The Beatles"],
        track: "Let It Be",
        tags: &["remaster"],
    },
    Case {
        title: "Nirvana - Smells Like Teen Spirit (Demo)",
        channel: None,
        artists: &["Nirvana"],
        track: "Smells Like Teen Spirit",
        tags: &["demo"],
    },
    Case {
        title: "Radiohead - Creep (Demo Version)",
        channel: None,
        artists: &["Radiohead"],
        track: "Creep",
        tags: &["demo"],
    },
    // ---------------------------------------------------------------------------------------
    // Remixes, extended mixes, radio edits
    // ---------------------------------------------------------------------------------------
    Case {
        title: "Avicii - Levels (Skrillex Remix)",
        channel: None,
        artists: &["Avicii"],
        track: "Levels",
        tags: &["remix"],
    },
    Case {
        title: "Lil Nas X - Old Town Road (feat. Billy Ray Cyrus) [Remix]",
        channel: Some("Lil Nas X"),
        artists: &["Lil Nas X", "Billy Ray Cyrus"],
        track: "Old Town Road",
        tags: &["remix"],
    },
    Case {
        title: "Dua Lipa - Levitating (The Blessed Madonna Remix) ft. Madonna, Missy Elliott",
        channel: Some("Dua Lipa"),
        artists: &["Dua Lipa", "Madonna", "Missy Elliott"],
        track: "Levitating",
        tags: &["remix"],
    },
    Case {
        title: "Calvin Harris - Summer (Extended Mix)",
        channel: None,
        artists: &["Calvin Harris"],
        track: "Summer",
        tags: &["extended"],
    },
    Case {
        title: "Swedish House Mafia - Don't You Worry Child (Extended Mix) ft. John Martin",
        channel: None,
        artists: &["Swedish House Mafia", "John Martin"],
        track: "Don't You Worry Child",
        tags: &["extended"],
    },
    Case {
        title: "Alice Deejay - Better Off Alone (Radio Edit)",
        channel: None,
        artists: &["Alice Deejay"],
        track: "Better Off Alone",
        tags: &["radio_edit"],
    },
    Case {
        title: "Robin Schulz - Sugar (feat. Francesco Yates) [Radio Edit]",
        channel: Some("Robin Schulz"),
        artists: &["Robin Schulz", "Francesco Yates"],
        track: "Sugar",
        tags: &["radio_edit"],
    },
    // ---------------------------------------------------------------------------------------
    // Sped up / slowed / nightcore / 8D re-uploads
    // ---------------------------------------------------------------------------------------
    Case {
        title: "SZA - Kill Bill (sped up)",
        channel: Some("sped up songs"),
        artists: &["SZA"],
        track: "Kill Bill",
        tags: &["sped_up"],
    },
    Case {
        title: "PinkPantheress, Ice Spice - Boy's a liar Pt. 2 (sped up)",
        channel: None,
        artists: &["PinkPantheress", "Ice Spice"],
        track: "Boy's a liar Pt. 2",
        tags: &["sped_up"],
    },
    Case {
        title: "Lana Del Rey - Say Yes To Heaven (slowed + reverb)",
        channel: Some("slowed dreams"),
        artists: &["Lana Del Rey"],
        track: "Say Yes To Heaven",
        tags: &["slowed"],
    },
    Case {
        // The "&" inside the tag bracket is not an artist joiner.
        title: "the weeknd - die for you (slowed & reverb)",
        channel: None,
        artists: &["the weeknd"],
        track: "die for you",
        tags: &["slowed"],
    },
    Case {
        title: "Kali Uchis - telepatía (slowed)",
        channel: None,
        artists: &["Kali Uchis"],
        track: "telepatía",
        tags: &["slowed"],
    },
    Case {
        // No separator, non-topic channel: no artist.
        title: "Heather (slowed + reverb)",
        channel: Some("lofi vibes"),
        artists: &[],
        track: "Heather",
        tags: &["slowed"],
    },
    Case {
        // Unsure: "Nightcore" is a tag, not an artist, so no artist is known.
        title: "Nightcore - Monster",
        channel: Some("NightcoreReality"),
        artists: &[],
        track: "Monster",
        tags: &["nightcore"],
    },
    Case {
        // Unsure: as above.
        title: "Nightcore - Angel With A Shotgun (Lyrics)",
        channel: Some("Syrex"),
        artists: &[],
        track: "Angel With A Shotgun",
        tags: &["nightcore", "lyric_video"],
    },
    Case {
        title: "Imagine Dragons - Believer 8D AUDIO 🎧",
        channel: Some("8D Tunes"),
        artists: &["Imagine Dragons"],
        track: "Believer",
        tags: &["8d"],
    },
    Case {
        title: "Billie Eilish - bad guy (8D AUDIO)",
        channel: None,
        artists: &["Billie Eilish"],
        track: "bad guy",
        tags: &["8d"],
    },
    Case {
        title: "Faded 8D Audio",
        channel: Some("8D Tunes"),
        artists: &[],
        track: "Faded",
        tags: &["8d"],
    },
    // ---------------------------------------------------------------------------------------
    // Karaoke, instrumental, covers, tutorials, reactions
    // ---------------------------------------------------------------------------------------
    Case {
        title: "Adele - Hello (Karaoke Version)",
        channel: Some("Sing King"),
        artists: &["Adele"],
        track: "Hello",
        tags: &["karaoke"],
    },
    Case {
        title: "Whitney Houston - I Will Always Love You (Karaoke Version)",
        channel: Some("Sing King"),
        artists: &["Whitney Houston"],
        track: "I Will Always Love You",
        tags: &["karaoke"],
    },
    Case {
        // Unsure: KaraFun puts the title first; only the karaoke context says so.
        title: "Bohemian Rhapsody - Queen | Karaoke Version | KaraFun",
        channel: Some("KaraFun Karaoke"),
        artists: &["Queen"],
        track: "Bohemian Rhapsody",
        tags: &["karaoke"],
    },
    Case {
        title: "Eminem - Lose Yourself (Instrumental)",
        channel: None,
        artists: &["Eminem"],
        track: "Lose Yourself",
        tags: &["instrumental"],
    },
    Case {
        // Unsure: covers are "Title - Original Artist (Cover)"; the cover singer is not listed.
        title: "Someone You Loved - Lewis Capaldi (Cover)",
        channel: Some("Alexandra Porat"),
        artists: &["Lewis Capaldi"],
        track: "Someone You Loved",
        tags: &["cover"],
    },
    Case {
        // Unsure: as above.
        title: "Creep - Radiohead (Cover)",
        channel: Some("Acoustic Covers"),
        artists: &["Radiohead"],
        track: "Creep",
        tags: &["cover"],
    },
    Case {
        title: "How to play Wonderwall - Oasis | Guitar Tutorial",
        channel: Some("Andy Guitar"),
        artists: &["Oasis"],
        track: "Wonderwall",
        tags: &["tutorial"],
    },
    Case {
        title: "How To Play Hallelujah - Leonard Cohen | EASY Piano Tutorial",
        channel: Some("Piano Couture"),
        artists: &["Leonard Cohen"],
        track: "Hallelujah",
        tags: &["tutorial"],
    },
    Case {
        title: "How to Play Smells Like Teen Spirit - Nirvana (Guitar Lesson)",
        channel: Some("Marty Music"),
        artists: &["Nirvana"],
        track: "Smells Like Teen Spirit",
        tags: &["tutorial"],
    },
    Case {
        title: "Queen - Bohemian Rhapsody | REACTION",
        channel: Some("Lost In Vegas"),
        artists: &["Queen"],
        track: "Bohemian Rhapsody",
        tags: &["reaction"],
    },
    Case {
        // Unsure: the "FIRST TIME HEARING" prefix is dropped.
        title: "FIRST TIME HEARING Phil Collins - In The Air Tonight | REACTION",
        channel: Some("TwinsthenewTrend"),
        artists: &["Phil Collins"],
        track: "In The Air Tonight",
        tags: &["reaction"],
    },
    // ---------------------------------------------------------------------------------------
    // Other separators: en dash, em dash, tilde, colon
    // ---------------------------------------------------------------------------------------
    Case {
        title: "Kendrick Lamar – HUMBLE.",
        channel: Some("KendrickLamarVEVO"),
        artists: &["Kendrick Lamar"],
        track: "HUMBLE.",
        tags: &[],
    },
    Case {
        title: "Arctic Monkeys — Do I Wanna Know? (Official Video)",
        channel: Some("ArcticMonkeysVEVO"),
        artists: &["Arctic Monkeys"],
        track: "Do I Wanna Know?",
        tags: &["official_video"],
    },
    Case {
        title: "Mariya Takeuchi ~ Plastic Love",
        channel: None,
        artists: &["Mariya Takeuchi"],
        track: "Plastic Love",
        tags: &[],
    },
    Case {
        title: "Nujabes ~ Feather (feat. Cise Starr & Akin)",
        channel: Some("lofi archive"),
        artists: &["Nujabes", "Cise Starr", "Akin"],
        track: "Feather",
        tags: &[],
    },
    Case {
        title: "Metallica: Enter Sandman (Official Music Video)",
        channel: Some("Metallica"),
        artists: &["Metallica"],
        track: "Enter Sandman",
        tags: &["official_video"],
    },
    Case {
        title: "Radiohead: Creep (Live)",
        channel: None,
        artists: &["Radiohead"],
        track: "Creep",
        tags: &["live"],
    },
    // ---------------------------------------------------------------------------------------
    // Noise: [HD], (HQ), 4K, emoji, extra and non-breaking whitespace
    // ---------------------------------------------------------------------------------------
    Case {
        title: "Eminem - Lose Yourself [HD]",
        channel: None,
        artists: &["Eminem"],
        track: "Lose Yourself",
        tags: &[],
    },
    Case {
        title: "Toto - Africa (HQ)",
        channel: None,
        artists: &["Toto"],
        track: "Africa",
        tags: &[],
    },
    Case {
        title: "The Cranberries - Zombie (Official Music Video) 4K",
        channel: Some("The Cranberries"),
        artists: &["The Cranberries"],
        track: "Zombie",
        tags: &["official_video"],
    },
    Case {
        title: "Lil Uzi Vert - Just Wanna Rock 💎 [Official Music Video]",
        channel: Some("Lil Uzi Vert"),
        artists: &["Lil Uzi Vert"],
        track: "Just Wanna Rock",
        tags: &["official_video"],
    },
    Case {
        title: "🔥 Drake - God's Plan 🔥",
        channel: None,
        artists: &["Drake"],
        track: "God's Plan",
        tags: &[],
    },
    Case {
        title: "  Dua Lipa   -   Levitating   (Official Music Video)  ",
        channel: Some("Dua Lipa"),
        artists: &["Dua Lipa"],
        track: "Levitating",
        tags: &["official_video"],
    },
    Case {
        title: "Coldplay\u{a0}-\u{a0}Yellow (Official Video)",
        channel: Some("Coldplay"),
        artists: &["Coldplay"],
        track: "Yellow",
        tags: &["official_video"],
    },
    Case {
        title: "Kalush Orchestra - Stefania (Official Video)  [HD]",
        channel: None,
        artists: &["Kalush Orchestra"],
        track: "Stefania",
        tags: &["official_video"],
    },
];

thread_local! {
    /// The expected (artist, title) of the case being parsed, to recognise a swapped reading.
    static EXPECTED_SWAP: std::cell::RefCell<Option<(String, String)>> = const { std::cell::RefCell::new(None) };
}

/// Runs one parse, turning a panic into an error message so that one bad case does not hide the
/// others.
fn parse_catching(
    title: &str,
    channel: Option<&str>,
) -> Result<(Vec<String>, String, BTreeSet<String>), String> {
    panic::catch_unwind(|| {
        let parsed = parse_video_title(title, channel);
        let mut artists: Vec<String> = parsed.artists.iter().map(|a| normalise(a)).collect();
        let mut track = normalise(&parsed.title);
        // An order nothing confirmed ("Title - Artist | Karaoke Version" from a karaoke channel):
        // the parser says so and the matcher tries both readings, so the swapped reading counts.
        if parsed.swappable && artists.len() == 1 {
            let (a, t) = (artists[0].clone(), track.clone());
            if EXPECTED_SWAP.with(|w| w.borrow().as_ref() == Some(&(t.clone(), a.clone()))) {
                artists = vec![t];
                track = a;
            }
        }
        let tags: BTreeSet<String> = parsed.tags.iter().map(|t| t.as_str().to_string()).collect();
        (artists, track, tags)
    })
    .map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".to_string())
    })
}

#[test]
fn parses_real_world_video_titles() {
    assert!(
        CASES.len() >= 80,
        "expected at least 80 cases, have {}",
        CASES.len()
    );
    for case in CASES {
        for tag in case.tags {
            assert!(
                KNOWN_TAGS.contains(tag),
                "unknown tag {tag:?} in the case {:?}",
                case.title
            );
        }
    }

    let mut failures: Vec<String> = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let want_artists: Vec<String> = case.artists.iter().map(|a| normalise(a)).collect();
        let want_title = normalise(case.track);
        let want_tags: BTreeSet<String> = case.tags.iter().map(|t| t.to_string()).collect();

        EXPECTED_SWAP.with(|w| *w.borrow_mut() = want_artists.first().map(|a| (a.clone(), want_title.clone())));
        match parse_catching(case.title, case.channel) {
            Err(msg) => failures.push(format!(
                "#{i} {:?} (channel {:?}): panicked: {msg}",
                case.title, case.channel
            )),
            Ok((artists, title, tags)) => {
                let mut diffs = Vec::new();
                if artists != want_artists {
                    diffs.push(format!("artists: want {want_artists:?}, got {artists:?}"));
                }
                if title != want_title {
                    diffs.push(format!("title: want {want_title:?}, got {title:?}"));
                }
                if tags != want_tags {
                    diffs.push(format!("tags: want {want_tags:?}, got {tags:?}"));
                }
                if !diffs.is_empty() {
                    failures.push(format!(
                        "#{i} {:?} (channel {:?}):\n    {}",
                        case.title,
                        case.channel,
                        diffs.join("\n    ")
                    ));
                }
            }
        }
    }

    if !failures.is_empty() {
        panic!(
            "{} of {} title cases failed:\n\n{}\n\n{} of {} title cases failed",
            failures.len(),
            CASES.len(),
            failures.join("\n"),
            failures.len(),
            CASES.len()
        );
    }
}

#[test]
fn edge_cases_have_defined_results() {
    let mut failures: Vec<String> = Vec::new();
    let mut expect = |label: &str,
                      title: &str,
                      channel: Option<&str>,
                      artists: &[&str],
                      track: &str,
                      tags: &[&str]| {
        let want_artists: Vec<String> = artists.iter().map(|a| normalise(a)).collect();
        let want_title = normalise(track);
        let want_tags: BTreeSet<String> = tags.iter().map(|t| t.to_string()).collect();
        match parse_catching(title, channel) {
            Err(msg) => failures.push(format!("{label}: panicked: {msg}")),
            Ok((got_artists, got_title, got_tags)) => {
                if got_artists != want_artists || got_title != want_title || got_tags != want_tags {
                    failures.push(format!(
                        "{label}: want ({want_artists:?}, {want_title:?}, {want_tags:?}), \
                         got ({got_artists:?}, {got_title:?}, {got_tags:?})"
                    ));
                }
            }
        }
    };

    // Empty and blank titles: nothing found, no panic.
    expect("empty title", "", None, &[], "", &[]);
    expect(
        "empty title, channel",
        "",
        Some("Rick Astley"),
        &[],
        "",
        &[],
    );
    expect("blank title", "   \t  ", None, &[], "", &[]);
    // No channel at all.
    expect(
        "no channel",
        "Rick Astley - Never Gonna Give You Up",
        None,
        &["Rick Astley"],
        "Never Gonna Give You Up",
        &[],
    );
    // Only noise: the tag is reported, nothing is left for the title.
    expect(
        "only noise",
        "(Official Video)",
        None,
        &[],
        "",
        &["official_video"],
    );
    expect(
        "only noise, channel",
        "(Official Video)",
        Some("Some Uploads"),
        &[],
        "",
        &["official_video"],
    );
    // No separator and a channel that is neither "- Topic" nor VEVO: no artist, the whole title.
    expect(
        "no separator, no channel",
        "Never Gonna Give You Up",
        None,
        &[],
        "Never Gonna Give You Up",
        &[],
    );
    expect(
        "no separator, plain channel",
        "Blinding Lights",
        Some("Some Random Uploads"),
        &[],
        "Blinding Lights",
        &[],
    );
    drop(expect);

    // Degenerate inputs: only that they return, without a panic.
    let odd = [
        "-",
        " - ",
        "|",
        "||||",
        "()",
        "[]",
        "「」",
        "『』",
        "''",
        "\"\"",
        "feat.",
        "ft. x & ,",
        "...",
        "…",
        "- Topic",
        "VEVO",
        "🎧🔥💎",
        "(((((((((((",
        ")))))]]]]",
        "\u{0}\u{1}\u{7f}",
        "\u{200b}\u{200d}\u{feff}",
    ];
    for title in odd {
        for channel in [
            None,
            Some(""),
            Some("- Topic"),
            Some("VEVO"),
            Some("Artist - Topic"),
        ] {
            if let Err(msg) = parse_catching(title, channel) {
                failures.push(format!("{title:?} (channel {channel:?}): panicked: {msg}"));
            }
        }
    }

    // Very long titles (10 kB and more): no panic, and no pathological slowness.
    let long_titles = [
        "a".repeat(10_000),
        "Artist - ".to_string() + &"Title ".repeat(1_700),
        "(Official Video) ".repeat(600),
        "(".repeat(10_000),
        "(".repeat(5_000) + &")".repeat(5_000),
        "Artist ft. ".repeat(1_000) + "- Title",
        "A x B & C, ".repeat(1_000) + "- Title",
        "- ".repeat(5_000),
        "「".repeat(3_000) + "Title" + &"」".repeat(3_000),
        "Исполнитель - Название ".repeat(500),
        "夜に駆ける".repeat(700),
        "🔥".repeat(2_500),
    ];
    for title in &long_titles {
        let start = Instant::now();
        let result = parse_catching(title, Some("Some Channel"));
        let elapsed = start.elapsed();
        let head: String = title.chars().take(24).collect();
        if let Err(msg) = result {
            failures.push(format!(
                "long title {head:?}… ({} bytes): panicked: {msg}",
                title.len()
            ));
        } else if elapsed > Duration::from_secs(3) {
            failures.push(format!(
                "long title {head:?}… ({} bytes): took {elapsed:?}",
                title.len()
            ));
        }
    }

    if !failures.is_empty() {
        panic!(
            "{} edge cases failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

#[test]
fn normalise_follows_the_documented_rules() {
    let cases: &[(&str, &str)] = &[
        ("", ""),
        ("   ", ""),
        ("Hello World", "hello world"),
        ("  HELLO,   World!  ", "hello world"),
        ("Beyoncé", "beyonce"),
        ("ROSALÍA — DESPECHÁ", "rosalia despecha"),
        ("Tiësto", "tiesto"),
        ("São Paulo", "sao paulo"),
        ("AC/DC", "ac dc"),
        // Apostrophes are dropped, not spaced: "Don't" and "Dont" are one word.
        ("Don't Stop Me Now", "dont stop me now"),
        ("Ｆｕｌｌ　Ｗｉｄｔｈ", "full width"),
        ("Pretender［Official Video］", "pretender official video"),
        ("Сансара", "сансара"),
        ("ГРУППА КРОВИ", "группа крови"),
        ("夜に駆ける", "夜に駆ける"),
        ("방탄소년단", "방탄소년단"),
        ("a\tb\nc", "a b c"),
    ];
    let mut failures = Vec::new();
    for (input, want) in cases {
        let got = normalise(input);
        if got != *want {
            failures.push(format!("normalise({input:?}): want {want:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
