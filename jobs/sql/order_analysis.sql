-- job: order_analysis
-- description: Seed 002's order questions on generated orders: busiest weekday and hour, product bought first, purchase intervals, duplicate removal
-- param: orders_csv path = lake/sources/orders/orders.csv -- orders: order_id, customer_id, order_ts
-- param: details_csv path = lake/sources/orders/order_details.csv -- order lines: order_id, line_no, product_id, price, quantity, tax_rate, shipping_rate
-- param: products_csv path = lake/sources/orders/products.csv -- products: product_id, name, category, price
-- param: duplicate_window_minutes int = 60 -- a repeat of a customer's order (same lines) within this many minutes is a duplicate
--
-- Generate the input with `backbeat datagen --only orders --out lake`. Duplicates are removed
-- atomically: `orders` and `order_details` are each replaced in one Delta commit, and the removed
-- orders are kept in `order_duplicates`.
CREATE EXTERNAL TABLE src_orders (order_id BIGINT NOT NULL, customer_id BIGINT NOT NULL, order_ts TIMESTAMP NOT NULL)
  STORED AS CSV LOCATION ${orders_csv} OPTIONS ('format.has_header' 'true');
CREATE EXTERNAL TABLE src_order_details (order_id BIGINT NOT NULL, line_no INT, product_id BIGINT NOT NULL, price DOUBLE NOT NULL, quantity INT NOT NULL, tax_rate DOUBLE, shipping_rate DOUBLE)
  STORED AS CSV LOCATION ${details_csv} OPTIONS ('format.has_header' 'true');
CREATE EXTERNAL TABLE src_products (product_id BIGINT NOT NULL, name VARCHAR NOT NULL, category VARCHAR, price DOUBLE NOT NULL)
  STORED AS CSV LOCATION ${products_csv} OPTIONS ('format.has_header' 'true');

CREATE OR REPLACE TABLE orders AS SELECT * FROM src_orders;
CREATE OR REPLACE TABLE order_details AS SELECT * FROM src_order_details;
CREATE OR REPLACE TABLE products AS SELECT * FROM src_products;

-- A duplicate repeats an earlier order of the same customer with the same lines, soon after it.
CREATE OR REPLACE TABLE order_duplicates AS
WITH signed AS (
  SELECT o.order_id, o.customer_id, o.order_ts,
         string_agg(concat(d.product_id, 'x', d.quantity, '@', d.price), ',' ORDER BY d.line_no) AS lines
  FROM orders o JOIN order_details d ON d.order_id = o.order_id
  GROUP BY o.order_id, o.customer_id, o.order_ts
), ordered AS (
  SELECT order_id, customer_id, order_ts,
         lag(order_ts) OVER (PARTITION BY customer_id, lines ORDER BY order_ts, order_id) AS previous_ts,
         lag(order_id) OVER (PARTITION BY customer_id, lines ORDER BY order_ts, order_id) AS kept_order_id
  FROM signed
)
SELECT order_id, customer_id, order_ts, kept_order_id FROM ordered
WHERE previous_ts IS NOT NULL
  AND date_part('epoch', order_ts) - date_part('epoch', previous_ts) <= ${duplicate_window_minutes} * 60;

CREATE OR REPLACE TABLE orders AS SELECT * FROM orders WHERE order_id NOT IN (SELECT order_id FROM order_duplicates);
CREATE OR REPLACE TABLE order_details AS SELECT * FROM order_details WHERE order_id NOT IN (SELECT order_id FROM order_duplicates);

CREATE OR REPLACE TABLE order_report_weekday AS
SELECT to_char(order_ts, '%A') AS weekday, count(*) AS orders FROM orders GROUP BY 1;
CREATE OR REPLACE TABLE order_report_hour AS
SELECT CAST(date_part('hour', order_ts) AS INT) AS hour, count(*) AS orders FROM orders GROUP BY 1;
CREATE OR REPLACE TABLE order_report_first_product AS
WITH first_orders AS (
  SELECT order_id FROM (
    SELECT order_id, row_number() OVER (PARTITION BY customer_id ORDER BY order_ts, order_id) AS n FROM orders
  ) WHERE n = 1
)
SELECT p.product_id, p.name, count(*) AS times_bought_first
FROM first_orders f JOIN order_details d ON d.order_id = f.order_id JOIN products p ON p.product_id = d.product_id
GROUP BY p.product_id, p.name;
CREATE OR REPLACE TABLE order_report_intervals AS
WITH gaps AS (
  SELECT (date_part('epoch', order_ts) - date_part('epoch', lag(order_ts) OVER (PARTITION BY customer_id ORDER BY order_ts, order_id))) / 86400.0 AS days
  FROM orders
)
SELECT avg(days) AS avg_days_between_purchases, median(days) AS median_days_between_purchases, count(*) AS repeat_purchases
FROM gaps WHERE days IS NOT NULL;

SELECT count(*) AS duplicate_orders_removed FROM order_duplicates;
SELECT weekday AS busiest_weekday, orders FROM order_report_weekday ORDER BY orders DESC, weekday LIMIT 1;
SELECT hour AS busiest_hour, orders FROM order_report_hour ORDER BY orders DESC, hour LIMIT 1;
SELECT name AS most_often_bought_first, times_bought_first FROM order_report_first_product ORDER BY times_bought_first DESC, product_id LIMIT 1;
SELECT round(avg_days_between_purchases, 2) AS avg_days, round(median_days_between_purchases, 2) AS median_days, repeat_purchases FROM order_report_intervals;
