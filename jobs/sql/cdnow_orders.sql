-- job: cdnow_orders
-- description: Loads the real CDNOW purchases (the full master file or the 2,357-customer sample of the BG/NBD paper) as an orders table
-- param: purchases path = datasets/cdnow/CDNOW_sample.txt -- CDNOW_sample.txt (master id, sample id, date, CDs, dollars) or CDNOW_master.txt (id, date, CDs, dollars)
-- param: out table = cdnow_orders -- output: customer_id, order_date, cds, amount
--
-- Both files are whitespace-separated with dates as YYYYMMDD; the master file has a header line,
-- the sample none, and the sample's customer id is its second column (1..2357), the one the paper
-- and lifetimes use. Lines that do not start with a digit (the header) are skipped.
CREATE EXTERNAL TABLE cdnow_orders_raw (line VARCHAR) STORED AS CSV LOCATION ${purchases}
  OPTIONS ('format.has_header' 'false', 'format.delimiter' '|');

CREATE OR REPLACE TABLE ${out} AS
WITH lines AS (
  SELECT l, array_length(string_to_array(l, ' ')) AS n
  FROM (SELECT btrim(regexp_replace(line, '\s+', ' ', 'g')) AS l FROM cdnow_orders_raw)
  WHERE l ~ '^[0-9]'
)
SELECT CAST(CASE WHEN n = 5 THEN split_part(l, ' ', 2) ELSE split_part(l, ' ', 1) END AS BIGINT) AS customer_id,
       to_date(CASE WHEN n = 5 THEN split_part(l, ' ', 3) ELSE split_part(l, ' ', 2) END, '%Y%m%d') AS order_date,
       CAST(CASE WHEN n = 5 THEN split_part(l, ' ', 4) ELSE split_part(l, ' ', 3) END AS INT) AS cds,
       CAST(CASE WHEN n = 5 THEN split_part(l, ' ', 5) ELSE split_part(l, ' ', 4) END AS DOUBLE) AS amount
FROM lines;

SELECT count(*) AS purchases, count(DISTINCT customer_id) AS customers, min(order_date) AS first_day, max(order_date) AS last_day FROM ${out};
