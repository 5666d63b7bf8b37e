-- job: catalogue_analytics
-- description: Seeds 001/003 on a Spotify-style tracks table: per genre track count, audio-feature averages, most popular artist, tracks per album
-- param: tracks table = tracks -- a lake table with the Spotify tracks columns (e.g. from `backbeat datagen --only tracks`)
-- param: top int = 10 -- genres shown in the report
CREATE OR REPLACE TABLE genre_report AS
WITH artist_popularity AS (
  SELECT track_genre, split_part(artists, ';', 1) AS artist, avg(popularity) AS popularity, count(*) AS tracks,
         row_number() OVER (PARTITION BY track_genre ORDER BY avg(popularity) DESC, count(*) DESC, split_part(artists, ';', 1)) AS rank
  FROM ${tracks} GROUP BY track_genre, split_part(artists, ';', 1)
)
SELECT t.track_genre,
       count(*) AS tracks,
       avg(t.danceability) AS danceability, avg(t.energy) AS energy, avg(t.loudness) AS loudness,
       avg(t.speechiness) AS speechiness, avg(t.acousticness) AS acousticness, avg(t.instrumentalness) AS instrumentalness,
       avg(t.liveness) AS liveness, avg(t.valence) AS valence, avg(t.tempo) AS tempo, avg(t.popularity) AS popularity,
       max(a.artist) AS most_popular_artist
FROM ${tracks} t LEFT JOIN artist_popularity a ON a.track_genre = t.track_genre AND a.rank = 1
GROUP BY t.track_genre;

CREATE OR REPLACE TABLE album_sizes AS
SELECT album_name, split_part(artists, ';', 1) AS artist, count(*) AS tracks FROM ${tracks} GROUP BY 1, 2;

SELECT track_genre, tracks, round(energy, 3) AS energy, round(acousticness, 3) AS acousticness, round(valence, 3) AS valence, most_popular_artist
FROM genre_report ORDER BY popularity DESC, track_genre LIMIT ${top};
SELECT round(avg(tracks), 2) AS avg_tracks_per_album, max(tracks) AS largest_album, count(*) AS albums FROM album_sizes;
