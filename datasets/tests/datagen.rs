//! The generators' promises, measured: determinism, schemas and ranges, and the structural
//! properties the jobs depend on (audio features predict genre, listening has a collaborative
//! signal, dirty and duplicate rates are as asked, ground truth points into the catalogue).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::Path;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type, Int64Type};
use backbeat_datasets::datagen::{DatagenConfig, Dataset, Manifest, generate};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

fn run(dir: &Path, scale: f64, seed: u64, datasets: &[Dataset], dirty_rate: f64) -> Manifest {
    generate(&DatagenConfig { scale, seed, out: dir.to_path_buf(), datasets: datasets.to_vec(), dirty_rate }).unwrap()
}

fn read_parquet(path: &Path) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap().build().unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().is_dir() {
            out.extend(files(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out.sort();
    out
}

#[test]
fn same_seed_and_scale_give_byte_identical_files_and_another_seed_does_not() {
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run(a.path(), 0.05, 7, &Dataset::ALL, 0.02);
    run(b.path(), 0.05, 7, &Dataset::ALL, 0.02);
    run(c.path(), 0.05, 8, &Dataset::ALL, 0.02);
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert!(fa.len() >= 13, "{fa:?}");
    assert_eq!(fa.len(), fb.len());
    for (x, y) in fa.iter().zip(&fb) {
        assert_eq!(x.strip_prefix(a.path()).unwrap(), y.strip_prefix(b.path()).unwrap());
        assert!(std::fs::read(x).unwrap() == std::fs::read(y).unwrap(), "{} differs between runs", x.display());
    }
    let tracks = |d: &Path| std::fs::read(d.join("tracks/part-0.parquet")).unwrap();
    assert_ne!(tracks(a.path()), tracks(c.path()), "a different seed gives different data");
}

#[test]
fn tracks_have_the_spotify_schema_real_ranges_and_genre_structure() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), 0.5, 42, &[Dataset::Tracks], 0.0);
    let t = read_parquet(&dir.path().join("tracks/part-0.parquet"));
    let schema = t.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        ["track_id", "artists", "album_name", "track_name", "popularity", "duration_ms", "explicit", "danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness", "instrumentalness", "liveness", "valence", "tempo", "time_signature", "track_genre"]
    );
    assert_eq!(t.num_rows(), 5000);
    let f = |name: &str| t.column_by_name(name).unwrap().as_primitive::<Float64Type>().values().to_vec();
    for unit in ["danceability", "energy", "speechiness", "acousticness", "instrumentalness", "liveness", "valence"] {
        assert!(f(unit).iter().all(|v| (0.0..=1.0).contains(v)), "{unit} in [0, 1]");
    }
    assert!(f("loudness").iter().all(|v| (-60.0..=5.0).contains(v)));
    assert!(f("tempo").iter().all(|v| (30.0..=250.0).contains(v)));
    let ints = |name: &str| t.column_by_name(name).unwrap().as_primitive::<Int32Type>().values().to_vec();
    assert!(ints("key").iter().all(|k| (0..12).contains(k)));
    assert!(ints("mode").iter().all(|m| *m == 0 || *m == 1));
    assert!(ints("popularity").iter().all(|p| (0..=100).contains(p)));
    assert!(ints("time_signature").iter().all(|s| [1, 3, 4, 5].contains(s)));
    let genres: Vec<String> = t.column_by_name("track_genre").unwrap().as_string::<i32>().iter().map(|g| g.unwrap().to_string()).collect();
    let distinct: HashSet<&String> = genres.iter().collect();
    assert!(distinct.len() >= 110, "about 114 genres, got {}", distinct.len());
    let ids: HashSet<&str> = t.column_by_name("track_id").unwrap().as_string::<i32>().iter().map(|s| s.unwrap()).collect();
    assert_eq!(ids.len(), t.num_rows(), "track ids are unique");
    let artists = t.column_by_name("artists").unwrap().as_string::<i32>();
    let featuring = (0..t.num_rows()).filter(|&i| artists.value(i).contains(';')).count();
    assert!(featuring > t.num_rows() / 20, "some tracks feature a second artist");
    let names = t.column_by_name("track_name").unwrap().as_string::<i32>();
    assert!((0..t.num_rows()).any(|i| !names.value(i).is_ascii()), "multilingual titles");

    // Correlations the seeds' analyses rely on.
    let (energy, loudness, acoustic) = (f("energy"), f("loudness"), f("acousticness"));
    assert!(correlation(&energy, &loudness) > 0.5, "energy and loudness rise together");
    assert!(correlation(&energy, &acoustic) < -0.4, "acousticness opposes energy");

    // 1-nearest neighbour on standardised audio features shares the genre well above chance
    // (1/114), but far from always.
    let features: Vec<Vec<f64>> = ["danceability", "energy", "loudness", "speechiness", "acousticness", "instrumentalness", "liveness", "valence", "tempo"]
        .iter()
        .map(|n| standardise(&f(n)))
        .collect();
    let n = 1500;
    let mut agree = 0;
    for i in 0..n {
        let mut best = (f64::MAX, 0);
        for j in 0..t.num_rows() {
            if i != j {
                let d: f64 = features.iter().map(|c| (c[i] - c[j]).powi(2)).sum();
                if d < best.0 {
                    best = (d, j);
                }
            }
        }
        agree += usize::from(genres[i] == genres[best.1]);
    }
    let rate = agree as f64 / n as f64;
    eprintln!("1-NN genre agreement: {rate:.3} (chance {:.3})", 1.0 / 114.0);
    assert!(rate > 5.0 / 114.0 && rate < 0.8, "1-NN genre agreement {rate}");
}

/// The value of `column` in CSV `line`, using the header of the file `text`.
fn csv_field(text: &str, line: &str, column: &str) -> String {
    let header = text.lines().next().unwrap();
    let index = header.split(',').position(|c| c == column).unwrap();
    let record = csv::ReaderBuilder::new().has_headers(false).from_reader(line.as_bytes()).records().next().unwrap().unwrap();
    record[index].to_string()
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let (sa, sb) = (standardise(a), standardise(b));
    sa.iter().zip(&sb).map(|(x, y)| x * y).sum::<f64>() / a.len() as f64
}

fn standardise(v: &[f64]) -> Vec<f64> {
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt().max(1e-12);
    v.iter().map(|x| (x - mean) / sd).collect()
}

#[test]
fn item_item_collaborative_filtering_beats_popularity_on_held_out_plays() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = run(dir.path(), 0.3, 42, &[Dataset::Listening], 0.0);
    let listening = manifest.counts.listening.unwrap();
    let events = read_parquet(&dir.path().join("listening_events/part-0.parquet"));
    assert_eq!(events.num_rows() as u64, listening.events);
    let users = events.column(0).as_primitive::<Int64Type>();
    let tracks = events.column(1).as_string::<i32>();
    let at = events.column(2).as_primitive::<arrow::datatypes::TimestampMicrosecondType>();

    // Per user, plays in time order; hold out each user's last distinct track.
    let mut history: HashMap<i64, Vec<(i64, &str)>> = HashMap::new();
    for i in 0..events.num_rows() {
        history.entry(users.value(i)).or_default().push((at.value(i), tracks.value(i)));
    }
    let mut train: HashMap<i64, HashSet<&str>> = HashMap::new();
    let mut held_out: HashMap<i64, &str> = HashMap::new();
    for (user, mut plays) in history {
        plays.sort();
        let last = plays.last().unwrap().1;
        let before: HashSet<&str> = plays.iter().map(|p| p.1).filter(|t| *t != last).collect();
        if before.len() >= 5 {
            held_out.insert(user, last);
            train.insert(user, before);
        }
    }
    assert!(held_out.len() > 100);

    // Heavy tail: the top 1% of tracks get far more than 1% of plays.
    let mut plays_per_track: HashMap<&str, usize> = HashMap::new();
    for i in 0..events.num_rows() {
        *plays_per_track.entry(tracks.value(i)).or_default() += 1;
    }
    let mut counts: Vec<usize> = plays_per_track.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let top: usize = counts.iter().take(counts.len() / 100).sum();
    assert!(top as f64 > 0.1 * events.num_rows() as f64, "power-law popularity");

    // Popularity baseline vs item-item co-occurrence, recall@20.
    let mut popularity: HashMap<&str, usize> = HashMap::new();
    let mut item_users: HashMap<&str, Vec<i64>> = HashMap::new();
    for (user, items) in &train {
        for item in items {
            *popularity.entry(item).or_default() += 1;
            item_users.entry(item).or_default().push(*user);
        }
    }
    let mut by_popularity: Vec<(&str, usize)> = popularity.iter().map(|(k, v)| (*k, *v)).collect();
    by_popularity.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let k = 20;
    let (mut hits_pop, mut hits_cf) = (0, 0);
    for (user, target) in &held_out {
        let seen = &train[user];
        let pop: Vec<&str> = by_popularity.iter().map(|p| p.0).filter(|t| !seen.contains(t)).take(k).collect();
        hits_pop += usize::from(pop.contains(target));
        // Score items co-played with the user's items, normalised by item popularity.
        let mut scores: HashMap<&str, f64> = HashMap::new();
        for item in seen {
            for other in item_users[item].iter().filter(|u| *u != user) {
                for candidate in &train[other] {
                    if !seen.contains(candidate) {
                        *scores.entry(candidate).or_default() += 1.0 / (popularity[candidate] as f64).sqrt();
                    }
                }
            }
        }
        let mut ranked: Vec<(&str, f64)> = scores.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        hits_cf += usize::from(ranked.iter().take(k).any(|(t, _)| t == target));
    }
    let (recall_pop, recall_cf) = (hits_pop as f64 / held_out.len() as f64, hits_cf as f64 / held_out.len() as f64);
    eprintln!("recall@{k}: item-item {recall_cf:.3}, popularity {recall_pop:.3} over {} users", held_out.len());
    assert!(recall_cf > recall_pop * 1.2, "CF {recall_cf} vs popularity {recall_pop}");
}

#[test]
fn dirty_rows_and_duplicates_come_at_the_requested_rates_and_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = run(dir.path(), 1.0, 42, &[Dataset::Orders, Dataset::Isrc], 0.02);
    let orders = manifest.counts.orders.clone().unwrap();

    // Every recorded corruption is really there: the line fails to parse as its file's schema.
    let mut per_file: HashMap<String, usize> = HashMap::new();
    for row in &manifest.dirty_rows {
        *per_file.entry(row.file.clone()).or_default() += 1;
        let text = std::fs::read_to_string(dir.path().join(&row.file)).unwrap();
        let line = text.lines().nth(row.line as usize - 1).unwrap();
        match row.kind.as_str() {
            "broken_json" => assert!(serde_json::from_str::<serde_json::Value>(line).is_err(), "{row:?}"),
            "missing_required" if row.file.ends_with(".ndjson") => {
                let doc: serde_json::Value = serde_json::from_str(line).unwrap();
                assert!(doc.get(row.column.as_deref().unwrap()).is_none(), "{row:?}");
            }
            "malformed_line" => {
                let header_fields = text.lines().next().unwrap().split(',').count();
                let fields = csv::ReaderBuilder::new().has_headers(false).from_reader(line.as_bytes()).records().next().unwrap().unwrap().len();
                assert_ne!(fields, header_fields, "{row:?}");
            }
            "wrong_type" | "missing_required" => {
                let field = csv_field(&text, line, row.column.as_deref().unwrap());
                if row.kind == "missing_required" {
                    assert!(field.is_empty(), "{row:?}: {line}");
                } else {
                    let bad_number = field.parse::<f64>().is_err();
                    let bad_time = chrono::NaiveDateTime::parse_from_str(&field, "%Y-%m-%d %H:%M:%S").is_err()
                        && chrono::NaiveDate::parse_from_str(&field, "%Y-%m-%d").is_err();
                    assert!(bad_number && bad_time, "{row:?}: '{field}' should not parse");
                }
            }
            other => panic!("unknown kind {other}"),
        }
    }
    let rate = |file: &str, rows: u64| per_file.get(file).copied().unwrap_or(0) as f64 / rows as f64;
    let orders_rate = rate("sources/orders/orders.csv", orders.orders);
    let details_rate = rate("sources/orders/order_details.csv", orders.order_details);
    eprintln!("dirty rates: orders {orders_rate:.4}, order_details {details_rate:.4}");
    assert!((0.012..0.028).contains(&orders_rate), "{orders_rate}");
    assert!((0.012..0.028).contains(&details_rate), "{details_rate}");
    assert!(manifest.dirty_rows.iter().any(|r| r.kind == "broken_json"));

    // Duplicates: recorded, at about the configured rate, and really the same order re-submitted.
    let dup_rate = orders.duplicate_orders as f64 / orders.orders as f64;
    eprintln!("duplicate orders: {} of {} ({dup_rate:.4})", orders.duplicate_orders, orders.orders);
    assert!((0.002..0.01).contains(&dup_rate), "{dup_rate}");
    let mut reader = csv::Reader::from_path(dir.path().join("sources/orders/duplicates.csv")).unwrap();
    let pairs: Vec<(String, String)> = reader.records().map(|r| { let r = r.unwrap(); (r[0].to_string(), r[1].to_string()) }).collect();
    assert_eq!(pairs.len() as u64, orders.duplicate_orders);
    let lines_of = |id: &str| -> Vec<String> {
        std::fs::read_to_string(dir.path().join("sources/orders/order_details.csv")).unwrap().lines()
            .filter(|l| l.split(',').next() == Some(id)).map(|l| l.splitn(2, ',').nth(1).unwrap().to_string()).collect()
    };
    let (dup, original) = &pairs[0];
    assert_eq!(lines_of(dup), lines_of(original), "a duplicate repeats the original's lines");

    // Seed 002 asks for the busiest weekday: the data has weekend seasonality to find.
    let mut by_weekday = [0usize; 7];
    let mut reader = csv::Reader::from_path(dir.path().join("sources/orders/orders.csv")).unwrap();
    for record in reader.records().flatten() {
        if let Ok(ts) = chrono::NaiveDateTime::parse_from_str(&record[2], "%Y-%m-%d %H:%M:%S") {
            by_weekday[chrono::Datelike::weekday(&ts).num_days_from_monday() as usize] += 1;
        }
    }
    assert!(by_weekday[5] > by_weekday[1] * 5 / 4, "Saturdays busier than Tuesdays: {by_weekday:?}");
}

#[test]
fn every_ground_truth_isrc_is_in_the_catalogue_and_non_matches_exist() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = run(dir.path(), 1.0, 42, &[Dataset::Isrc], 0.0);
    let isrc = manifest.counts.isrc.unwrap();
    let mut catalogue = HashSet::new();
    let pattern = regex_like_isrc;
    for r in csv::Reader::from_path(dir.path().join("sources/isrc/catalogue.csv")).unwrap().records() {
        let code = r.unwrap()[0].to_string();
        assert!(pattern(&code), "valid ISRC format: {code}");
        assert!(catalogue.insert(code), "ISRCs are unique");
    }
    assert_eq!(catalogue.len() as u64, isrc.catalogue);
    let (mut matching, mut none) = (0, 0);
    for r in csv::Reader::from_path(dir.path().join("sources/isrc/ground_truth.csv")).unwrap().records() {
        let r = r.unwrap();
        if r[3].is_empty() {
            none += 1;
            assert!(["cover", "karaoke", "tutorial", "unrelated"].contains(&&r[4]), "{r:?}");
        } else {
            matching += 1;
            assert!(catalogue.contains(&r[3]), "ground truth {} is in the catalogue", &r[3]);
        }
    }
    assert_eq!(matching, isrc.matching_items);
    assert!(none * 5 > matching, "a real share of items must not match");

    // The export is nested JSON: playlists with items with a media item and its metadata log.
    let first = std::fs::read_to_string(dir.path().join("sources/isrc/youtube_playlists.ndjson")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    let item = &doc["items"][0]["media_item"];
    assert!(doc["playlist_id"].as_str().unwrap().starts_with("PL"));
    assert_eq!(item["id"].as_str().unwrap().len(), 11);
    assert!(item["metadata_log"][0]["primary_title"].is_string());
}

fn regex_like_isrc(code: &str) -> bool {
    let parts: Vec<&str> = code.split('-').collect();
    parts.len() == 4
        && parts[0].len() == 2 && parts[0].chars().all(|c| c.is_ascii_uppercase())
        && parts[1].len() == 3 && parts[1].chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && parts[2].len() == 2 && parts[2].chars().all(|c| c.is_ascii_digit())
        && parts[3].len() == 5 && parts[3].chars().all(|c| c.is_ascii_digit())
}
