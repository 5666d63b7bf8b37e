//! Plausible multilingual artist names, song titles and album titles.
//!
//! Each genre has a language (j-pop sings in Japanese, sertanejo in Portuguese, most genres in
//! English), and titles are built from that language's words in its own script, so matching has
//! to cope with accents, kana, hangul, hanzi, Devanagari and Persian script.

use rand::Rng as _;
use rand::seq::IndexedRandom;

use crate::seeded_rng::Rng;

/// A language names and titles are drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// English.
    English,
    /// Spanish.
    Spanish,
    /// Portuguese.
    Portuguese,
    /// French.
    French,
    /// German.
    German,
    /// Swedish.
    Swedish,
    /// Turkish.
    Turkish,
    /// Japanese.
    Japanese,
    /// Korean.
    Korean,
    /// Chinese.
    Chinese,
    /// Hindi.
    Hindi,
    /// Persian.
    Persian,
    /// Malay.
    Malay,
}

impl Language {
    /// The ISO country code an ISRC registrant in this language would most likely have.
    pub fn country(self) -> &'static str {
        match self {
            Language::English => "US",
            Language::Spanish => "ES",
            Language::Portuguese => "BR",
            Language::French => "FR",
            Language::German => "DE",
            Language::Swedish => "SE",
            Language::Turkish => "TR",
            Language::Japanese => "JP",
            Language::Korean => "KR",
            Language::Chinese => "TW",
            Language::Hindi => "IN",
            Language::Persian => "IR",
            Language::Malay => "MY",
        }
    }

    fn words(self) -> &'static [&'static str] {
        match self {
            Language::English => &[
                "Midnight", "Fire", "Heart", "Dream", "Summer", "Rain", "Golden", "Wild", "Lonely", "Electric",
                "River", "Ghost", "Paradise", "Stranger", "Forever", "Broken", "Shadow", "Light", "Dance", "Road",
                "Home", "Sky", "Love", "Night", "City", "Ocean", "Silver", "Thunder", "Honey", "Storm",
                "Fever", "Echo", "Neon", "Velvet", "Diamond", "Desert", "Tonight", "Alive", "Falling", "Runaway",
                "Sugar", "Blue", "Stars", "Memory", "Kingdom", "Rebel", "Angel", "Machine", "Window", "Train",
            ],
            Language::Spanish => &[
                "Corazón", "Noche", "Fuego", "Amor", "Vida", "Sueño", "Bailar", "Luna", "Cielo", "Mañana",
                "Canción", "Besos", "Playa", "Verano", "Locura", "Dolor", "Alegría", "Calle", "Mar", "Tú",
            ],
            Language::Portuguese => &[
                "Saudade", "Coração", "Noite", "Amor", "Sertão", "Menina", "Estrada", "Paixão", "Lua", "Sol",
                "Vida", "Saudades", "Morena", "Chão", "Festa", "Céu", "Beijo", "Sonho", "Viola", "Mar",
            ],
            Language::French => &[
                "Amour", "Nuit", "Cœur", "Rêve", "Été", "Ciel", "Lumière", "Chanson", "Étoile", "Vie",
                "Toujours", "Soleil", "Mer", "Folie", "Liberté", "Douce", "Ville", "Fête", "Larmes", "Jamais",
            ],
            Language::German => &[
                "Herz", "Nacht", "Liebe", "Traum", "Sommer", "Feuer", "Himmel", "Straße", "Sehnsucht", "Glück",
                "Morgen", "Licht", "Welt", "Stadt", "Zeit", "Über", "Freiheit", "Schön", "Für", "Immer",
            ],
            Language::Swedish => &[
                "Hjärta", "Natt", "Kärlek", "Dröm", "Sommar", "Himmel", "Ljus", "Stjärna", "Hav", "Vår",
                "Vinter", "Själ", "Längtan", "Fjäril", "Öga", "Skog", "Väg", "Glädje", "Sång", "Är",
            ],
            Language::Turkish => &[
                "Aşk", "Gece", "Kalp", "Rüya", "Yağmur", "Güneş", "Deniz", "Yıldız", "Hayat", "Sevgili",
                "Gözler", "Özlem", "Şarkı", "Yalnız", "Çiçek", "Bahar", "Dünya", "Ağla", "Gönül", "Işık",
            ],
            Language::Japanese => &[
                "夜", "桜", "恋", "夢", "空", "東京", "涙", "花火", "未来", "星",
                "さよなら", "ありがとう", "君", "光", "風", "メロディー", "ダンス", "キラキラ", "サマー", "ハート",
            ],
            Language::Korean => &[
                "사랑", "밤", "꿈", "하늘", "눈물", "별", "너", "우리", "봄날", "여름",
                "안녕", "기억", "빛", "바다", "마음", "첫사랑", "시간", "노래", "천국", "불꽃",
            ],
            Language::Chinese => &[
                "爱", "夜", "梦", "星空", "月亮", "心", "雨", "告白", "永远", "青春",
                "时间", "城市", "温柔", "回忆", "天空", "你", "晴天", "花", "风", "光",
            ],
            Language::Hindi => &[
                "दिल", "प्यार", "रात", "सपना", "चाँद", "ज़िंदगी", "आसमान", "बारिश", "दुनिया", "यादें",
                "तेरे", "मेरा", "इश्क़", "सफ़र", "रंग", "नैना", "जान", "खुशी", "सितारे", "धड़कन",
            ],
            Language::Persian => &[
                "عشق", "شب", "دل", "رویا", "ماه", "باران", "ستاره", "زندگی", "آسمان", "دریا",
                "یار", "گل", "خاطره", "نور", "تو", "من", "بهار", "جان", "سفر", "امید",
            ],
            Language::Malay => &[
                "Cinta", "Malam", "Hati", "Mimpi", "Bulan", "Hujan", "Bintang", "Rindu", "Sayang", "Kasih",
                "Lagu", "Jiwa", "Laut", "Senja", "Pelangi", "Janji", "Kau", "Aku", "Bahagia", "Harapan",
            ],
        }
    }

    fn given_names(self) -> &'static [&'static str] {
        match self {
            Language::English => &["Emma", "Jack", "Olivia", "Noah", "Ava", "Liam", "Mia", "Lucas", "Zoe", "Eli", "Nina", "Ray", "Billie", "Otis", "June"],
            Language::Spanish => &["José", "María", "Sofía", "Mateo", "Lucía", "Andrés", "Camila", "Íñigo", "Valentina", "Álvaro"],
            Language::Portuguese => &["João", "Ana", "Luíza", "Gonçalo", "Beatriz", "Thiago", "Marília", "Luan", "Anitta", "Zé"],
            Language::French => &["Élodie", "Louis", "Chloé", "Théo", "Zoé", "Hélène", "Léo", "Amélie", "Benoît", "Inès"],
            Language::German => &["Jürgen", "Lena", "Moritz", "Sophie", "Björn", "Anja", "Felix", "Jörg", "Lea", "Max"],
            Language::Swedish => &["Åsa", "Linnea", "Björn", "Märta", "Oskar", "Elsa", "Göran", "Saga", "Nils", "Tove"],
            Language::Turkish => &["Ayşe", "Barış", "Çağla", "Emre", "Gülşen", "İlker", "Şebnem", "Tarkan", "Sezen", "Ömer"],
            Language::Japanese => &["陽菜", "蓮", "結衣", "大翔", "美咲", "ユイ", "ケンジ", "あいみょん", "優里", "米津"],
            Language::Korean => &["지민", "서연", "민준", "하늘", "유나", "태연", "지수", "현우", "수지", "도윤"],
            Language::Chinese => &["周", "林", "王菲", "陈", "张", "邓", "蔡", "李", "梁", "孙"],
            Language::Hindi => &["आरव", "प्रिया", "अर्जुन", "श्रेया", "राहुल", "नेहा", "अरिजीत", "सुनिधि", "विशाल", "किशोर"],
            Language::Persian => &["داریوش", "گوگوش", "علی", "مریم", "سارا", "رضا", "مهسا", "همایون", "شهرام", "نازنین"],
            Language::Malay => &["Siti", "Ahmad", "Nur", "Aiman", "Aina", "Hafiz", "Yuna", "Faizal", "Ziana", "Amir"],
        }
    }
}

/// A song title: one to four words of the language, sometimes with a parenthesised version.
pub fn song_title(rng: &mut Rng, language: Language) -> String {
    let words = language.words();
    let n = *[1, 1, 2, 2, 2, 3, 3, 4].choose(rng).expect("non-empty");
    let joiner = if matches!(language, Language::Japanese | Language::Chinese) { "" } else { " " };
    let mut title: Vec<&str> = (0..n).map(|_| *words.choose(rng).expect("non-empty")).collect();
    title.dedup();
    let mut title = title.join(joiner);
    if language == Language::English && rng.random_bool(0.12) {
        title = format!("The {title}");
    }
    if rng.random_bool(0.04) {
        title.push_str([" (Acoustic)", " (Remix)", " - Radio Edit", " (Interlude)"].choose(rng).expect("non-empty"));
    }
    title
}

/// An artist or band name in the language.
pub fn artist_name(rng: &mut Rng, language: Language) -> String {
    let given = *language.given_names().choose(rng).expect("non-empty");
    let word = *language.words().choose(rng).expect("non-empty");
    match rng.random_range(0..10) {
        0..=3 => given.to_string(),
        4..=6 => format!("{given} {word}"),
        7 if language == Language::English => format!("The {word}s"),
        8 => format!("{word} {}", ["Band", "Collective", "Trio", "Club", "Orchestra"].choose(rng).expect("non-empty")),
        _ => format!("{word} {given}"),
    }
}

/// An album title in the language.
pub fn album_title(rng: &mut Rng, language: Language) -> String {
    let title = song_title(rng, language);
    match rng.random_range(0..12) {
        0 => format!("{title} (Deluxe Edition)"),
        1 => format!("{title} - EP"),
        2 => format!("Greatest Hits {}", rng.random_range(1..4)),
        _ => title,
    }
}
