-- job: chinook_genres
-- description: Catalogue analytics on the real Chinook catalogue (seeds 001/003): per genre tracks, albums, length, sales, top artist
--
-- Loads the Chinook CSVs into Delta tables and reports per genre. Also runs as a plain script:
--   backbeat sql -f jobs/sql/chinook_genres.sql   (from the repository root)
CREATE EXTERNAL TABLE chinook_track_csv STORED AS CSV LOCATION 'datasets/chinook/track.csv' OPTIONS ('format.has_header' 'true');
CREATE EXTERNAL TABLE chinook_genre_csv STORED AS CSV LOCATION 'datasets/chinook/genre.csv' OPTIONS ('format.has_header' 'true');
CREATE EXTERNAL TABLE chinook_album_csv STORED AS CSV LOCATION 'datasets/chinook/album.csv' OPTIONS ('format.has_header' 'true');
CREATE EXTERNAL TABLE chinook_artist_csv STORED AS CSV LOCATION 'datasets/chinook/artist.csv' OPTIONS ('format.has_header' 'true');
CREATE EXTERNAL TABLE chinook_invoiceline_csv STORED AS CSV LOCATION 'datasets/chinook/invoiceline.csv' OPTIONS ('format.has_header' 'true');

CREATE OR REPLACE TABLE chinook_tracks PARTITIONED BY (genre) AS
SELECT t.id AS track_id, t.name AS track, al.title AS album, ar.name AS artist, g.name AS genre,
       t.milliseconds, t.unit_price
FROM chinook_track_csv t
JOIN chinook_album_csv al ON t.album = al.id
JOIN chinook_artist_csv ar ON al.artist = ar.id
JOIN chinook_genre_csv g ON t.genre = g.id;

CREATE OR REPLACE TABLE chinook_sales AS
SELECT track AS track_id, sum(unit_price * quantity) AS revenue, sum(quantity) AS units
FROM chinook_invoiceline_csv GROUP BY track;

CREATE OR REPLACE TABLE chinook_genre_report AS
WITH per_artist AS (
  SELECT genre, artist, count(*) AS n,
         row_number() OVER (PARTITION BY genre ORDER BY count(*) DESC, artist) AS rank
  FROM chinook_tracks GROUP BY genre, artist
)
SELECT t.genre,
       count(*) AS tracks,
       count(DISTINCT t.album) AS albums,
       round(avg(t.milliseconds) / 60000.0, 2) AS avg_minutes,
       coalesce(sum(s.units), 0) AS units_sold,
       round(coalesce(sum(s.revenue), 0), 2) AS revenue,
       max(CASE WHEN p.rank = 1 THEN p.artist END) AS top_artist
FROM chinook_tracks t
LEFT JOIN chinook_sales s ON s.track_id = t.track_id
LEFT JOIN per_artist p ON p.genre = t.genre AND p.rank = 1
GROUP BY t.genre;

SELECT * FROM chinook_genre_report ORDER BY tracks DESC LIMIT 10;
