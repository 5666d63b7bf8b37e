-- job: order_analysis_cdnow
-- description: Seed 002's questions on the real CDNOW purchases: busiest weekday, days between a customer's purchases
-- param: purchases path = datasets/cdnow/CDNOW_master.txt -- whitespace-separated: customer_id date(YYYYMMDD) number_of_cds dollar_value
--
-- CDNOW has dates but no time of day, so there is no busiest hour; purchase intervals are between
-- a customer's distinct purchase days.
CREATE EXTERNAL TABLE cdnow_raw (line VARCHAR) STORED AS CSV LOCATION ${purchases}
  OPTIONS ('format.has_header' 'true', 'format.delimiter' '|');

CREATE OR REPLACE TABLE cdnow_purchases AS
SELECT CAST(split_part(l, ' ', 1) AS BIGINT) AS customer_id,
       to_date(split_part(l, ' ', 2), '%Y%m%d') AS purchase_date,
       CAST(split_part(l, ' ', 3) AS INT) AS cds,
       CAST(split_part(l, ' ', 4) AS DOUBLE) AS dollars
FROM (SELECT btrim(regexp_replace(line, '\s+', ' ', 'g')) AS l FROM cdnow_raw)
WHERE l <> '';

CREATE OR REPLACE TABLE cdnow_report_weekday AS
SELECT to_char(purchase_date, '%A') AS weekday, count(*) AS purchases FROM cdnow_purchases GROUP BY 1;
CREATE OR REPLACE TABLE cdnow_report_intervals AS
WITH days AS (SELECT DISTINCT customer_id, purchase_date FROM cdnow_purchases),
gaps AS (
  SELECT CAST(purchase_date - lag(purchase_date) OVER (PARTITION BY customer_id ORDER BY purchase_date) AS BIGINT) AS gap FROM days
)
SELECT avg(gap) AS avg_days_between_purchases, median(gap) AS median_days_between_purchases, count(*) AS repeat_purchases
FROM gaps WHERE gap IS NOT NULL;

SELECT count(*) AS purchases, count(DISTINCT customer_id) AS customers FROM cdnow_purchases;
SELECT weekday AS busiest_weekday, purchases FROM cdnow_report_weekday ORDER BY purchases DESC, weekday LIMIT 1;
SELECT round(avg_days_between_purchases, 2) AS avg_days, median_days_between_purchases AS median_days, repeat_purchases FROM cdnow_report_intervals;
