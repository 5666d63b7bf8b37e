//! The comparison fields of both sides, as Delta tables written by the cluster: the items' parsed
//! titles (`parse_video_title` on the executors) and the catalogue's cleaned titles.
//!
//! Every text field is folded (`fold_text`: lowercase, Latin accents and punctuation gone) so the
//! blocking joins are plain equi-joins. An item whose title order nothing confirmed
//! ("TITLE - ARTIST" from an unknown channel) gets a second *reading* with artist and title
//! swapped; blocking and scoring treat readings as separate rows and keep the better.

use anyhow::Result;
use backbeat_cluster::session::BackbeatSession;

use crate::recs::run_sql;

/// Tags that make a different recording of the same song: compared between item and catalogue
/// (a live video is not the studio recording). Packaging tags (official video, lyric video) and
/// derivative ones (cover, karaoke: never matched at all) are not among them.
pub const VERSION_TAGS: &[&str] = &["8d", "acoustic", "demo", "extended", "live", "nightcore", "radio_edit", "remaster", "remix", "slowed", "sped_up"];

/// Names of the tables and columns the features come from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Video table: `media_item_id`, `title`, `channel_name`, `duration_s`.
    pub items: String,
    /// Metadata log: `media_item_id`, `observed_at`, `primary_title`, `secondary_title` (empty: none).
    pub metadata_log: String,
    /// Catalogue: `isrc`, `title`, `artists`, `duration_ms`.
    pub catalogue: String,
    /// Prefix of the working tables.
    pub out: String,
}

fn version_key(tags: &str) -> String {
    let list: Vec<String> = VERSION_TAGS.iter().map(|t| format!("'{t}'")).collect();
    format!("array_to_string(array_sort(array_intersect({tags}, make_array({}))), ',')", list.join(", "))
}

/// Writes `<out>_parsed` (every item: input hash, parsed fields) for all items of the source.
pub async fn parse_items(session: &BackbeatSession, s: &Sources) -> Result<()> {
    let log = if s.metadata_log.is_empty() {
        "(SELECT CAST(NULL AS VARCHAR) AS media_item_id, CAST(NULL AS VARCHAR) AS primary_title, CAST(NULL AS VARCHAR) AS secondary_title WHERE false)".to_string()
    } else {
        format!(
            "(SELECT media_item_id, primary_title, secondary_title FROM (SELECT media_item_id, primary_title, secondary_title, \
             row_number() OVER (PARTITION BY media_item_id ORDER BY observed_at DESC NULLS LAST, primary_title) AS r FROM {}) WHERE r = 1)",
            s.metadata_log
        )
    };
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_parsed AS \
         SELECT item_id, title, channel, duration_s, input_hash, p['artists'] AS artists, p['tags'] AS tags, \
                p['derivative'] AS derivative, p['swappable'] AS swappable, \
                fold_text(p['title']) AS title_n, fold_text(p['artist']) AS artist_n, fold_text(array_to_string(p['artists'], ' ')) AS artists_n, \
                {vkey} AS version_key \
         FROM (SELECT item_id, title, channel, duration_s, secondary_title, parse_video_title(title, channel, secondary_title) AS p, \
                      md5(concat_ws('|', coalesce(title, '∅'), coalesce(channel, '∅'), coalesce(CAST(duration_s AS VARCHAR), '∅'), coalesce(secondary_title, '∅'))) AS input_hash \
               FROM (SELECT m.media_item_id AS item_id, coalesce(nullif(trim(m.title), ''), l.primary_title) AS title, m.channel_name AS channel, \
                            CAST(m.duration_s AS BIGINT) AS duration_s, nullif(trim(l.secondary_title), '') AS secondary_title \
                     FROM {items_once} m LEFT JOIN {log} l ON m.media_item_id = l.media_item_id))",
        out = s.out,
        // A video listed in several playlists can be several rows of the items table: one per id
        // (the first by title, channel and length), or every output would repeat it.
        items_once = format!(
            "(SELECT media_item_id, title, channel_name, duration_s FROM (SELECT media_item_id, title, channel_name, duration_s, \
               row_number() OVER (PARTITION BY media_item_id ORDER BY title, channel_name, duration_s) AS k FROM {} WHERE media_item_id IS NOT NULL) WHERE k = 1)",
            s.items
        ),
        vkey = version_key("p['tags']"),
    ))
    .await?;
    Ok(())
}

/// Writes `<out>_readings` for the items of `todo` (a table with `item_id`): one row per reading
/// with the fields blocking and scoring use, and the rarest title token by catalogue frequency.
/// Derivative items (covers, karaoke...) are left out: they never match.
///
/// Readings: 0 as parsed; 1 artist and title swapped (when nothing confirmed the order); 2 to 5,
/// for an item with no artist at all ("Artist  Title [Lyrics]" from a lyrics channel, the dash
/// lost), the first one or two words, or the last one or two, taken as the artist. At scale 10
/// these were about 1 in 6 of a sample of 40 items whose recording blocking missed.
pub async fn readings(session: &BackbeatSession, out: &str, todo: &str) -> Result<()> {
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_readings AS \
         WITH r AS ( \
           SELECT item_id, 0 AS reading, {title} AS title_n, artist_n, artists_n, duration_s, version_key FROM {out}_parsed \
             WHERE NOT derivative AND item_id IN (SELECT item_id FROM {todo}) \
           UNION ALL \
           SELECT item_id, 1 AS reading, artist_n AS title_n, title_n AS artist_n, title_n AS artists_n, duration_s, version_key FROM {out}_parsed \
             WHERE NOT derivative AND swappable AND item_id IN (SELECT item_id FROM {todo}) \
           UNION ALL \
           SELECT item_id, reading, title_n, artist_n, artist_n AS artists_n, duration_s, version_key FROM ( \
             SELECT item_id, 1 + k.k + CASE WHEN k.tail THEN 2 ELSE 0 END AS reading, duration_s, version_key, \
                    array_to_string(CASE WHEN k.tail THEN array_slice(w, 1, n - k.k) ELSE array_slice(w, k.k + 1, n) END, ' ') AS title_n, \
                    array_to_string(CASE WHEN k.tail THEN array_slice(w, n - k.k + 1, n) ELSE array_slice(w, 1, k.k) END, ' ') AS artist_n \
             FROM (SELECT item_id, duration_s, version_key, string_to_array(title_n, ' ') AS w, \
                          CAST(array_length(string_to_array(title_n, ' ')) AS BIGINT) AS n FROM {out}_parsed \
                   WHERE NOT derivative AND coalesce(artist_n, '') = '' AND title_n <> '' AND item_id IN (SELECT item_id FROM {todo})) p \
             CROSS JOIN (SELECT CAST(column1 AS BIGINT) AS k, column2 AS tail FROM (VALUES (1, false), (2, false), (1, true), (2, true))) k \
             WHERE p.n > k.k)), \
         tokens AS (SELECT item_id, reading, unnest(string_to_array(title_n, ' ')) AS token FROM r), \
         rare AS (SELECT item_id, reading, token FROM ( \
           SELECT t.item_id, t.reading, t.token, row_number() OVER (PARTITION BY t.item_id, t.reading ORDER BY d.n, t.token) AS k \
           FROM tokens t JOIN {out}_token_df d ON t.token = d.token) WHERE k = 1) \
         SELECT r.*, rare.token AS rare_token FROM r LEFT JOIN rare ON r.item_id = rare.item_id AND r.reading = rare.reading",
        // "Artist Title" with the separator lost, the artist known from the channel: the title is
        // what follows the artist (at scale 10, about 1 in 4 of a sample of 40 items blocking missed).
        title = "CASE WHEN artist_n <> '' AND starts_with(title_n, concat(artist_n, ' ')) THEN substr(title_n, character_length(artist_n) + 2) ELSE title_n END"
    ))
    .await?;
    Ok(())
}

/// SQL for the folded main artist of a catalogue credit `column` ("Lena Sommer, Max" or "A feat.
/// B"): its first name.
pub fn main_artist_sql(column: &str) -> String {
    format!("fold_text(regexp_replace({column}, '(?i)\\s*(;|,|/| feat\\.? | ft\\.? | featuring | & | x | with ).*$', ''))")
}

/// Writes `<out>_catalogue` (cleaned, folded catalogue fields with each title's rarest token),
/// `<out>_token_df` (catalogue frequency of every title token) and `<out>_catalogue_keys` (the
/// typo keys of blocking rule 1 with their recordings per key).
pub async fn catalogue(session: &BackbeatSession, s: &Sources) -> Result<()> {
    let out = &s.out;
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_catalogue_fields AS \
         SELECT isrc, title, artists, duration_s, fold_text(c['title']) AS title_n, \
                {main} AS artist_n, \
                fold_text(artists) AS artists_n, {vkey} AS version_key \
         FROM (SELECT isrc, title, artists, CAST(duration_ms / 1000 AS BIGINT) AS duration_s, clean_track_title(title) AS c \
               FROM {cat} WHERE isrc IS NOT NULL AND title IS NOT NULL)",
        cat = s.catalogue,
        vkey = version_key("c['tags']"),
        main = main_artist_sql("artists"),
    ))
    .await?;
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_token_df AS SELECT token, count(*) AS n FROM \
         (SELECT DISTINCT isrc, unnest(string_to_array(title_n, ' ')) AS token FROM {out}_catalogue_fields) WHERE token <> '' GROUP BY token"
    ))
    .await?;
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_catalogue AS \
         SELECT c.*, rare.token AS rare_token FROM {out}_catalogue_fields c LEFT JOIN ( \
           SELECT isrc, token FROM (SELECT t.isrc, t.token, row_number() OVER (PARTITION BY t.isrc ORDER BY d.n, t.token) AS k \
             FROM (SELECT isrc, unnest(string_to_array(title_n, ' ')) AS token FROM {out}_catalogue_fields) t JOIN {out}_token_df d ON t.token = d.token) \
           WHERE k = 1) rare ON c.isrc = rare.isrc"
    ))
    .await?;
    // The catalogue's blocking keys with the number of recordings per key, kept with the
    // catalogue's fields: blocking then caps by a filter, and an incremental run reuses them. At
    // scale 100 computing them in every run's blocking took ~8 s (1M recordings, ~20 keys each).
    run_sql(session, &format!(
        "CREATE OR REPLACE TABLE {out}_catalogue_keys AS WITH ck AS ( \
           SELECT isrc, unnest(array_concat(typo_keys(title_n, artist_n), typo_keys(artist_n, title_n))) AS k FROM {out}_catalogue) \
         SELECT ck.isrc, ck.k, n.n FROM ck JOIN (SELECT k, count(*) AS n FROM ck GROUP BY k) n ON ck.k = n.k"
    ))
    .await?;
    crate::recs::drop_table(session, &format!("{out}_catalogue_fields")).await?;
    Ok(())
}
