-- job: order_analysis_pizza
-- description: Seed 002's time questions on the real pizza orders: busiest hour of the day and weekday
-- param: orders path = datasets/pizzaplace/pizzaplace.csv -- order lines: id, date, time, name, size, type, price
--
-- One row per pizza; an order is a distinct id. No customer ids, so no purchase intervals.
CREATE EXTERNAL TABLE pizza_lines_csv (id VARCHAR NOT NULL, date DATE NOT NULL, time VARCHAR NOT NULL, name VARCHAR, size VARCHAR, type VARCHAR, price DOUBLE)
  STORED AS CSV LOCATION ${orders} OPTIONS ('format.has_header' 'true');

CREATE OR REPLACE TABLE pizza_orders AS
SELECT id AS order_id, min(date) AS order_date, CAST(split_part(min(time), ':', 1) AS INT) AS hour,
       count(*) AS pizzas, sum(price) AS total
FROM pizza_lines_csv GROUP BY id;

CREATE OR REPLACE TABLE pizza_report_hour AS SELECT hour, count(*) AS orders FROM pizza_orders GROUP BY hour;
CREATE OR REPLACE TABLE pizza_report_weekday AS SELECT to_char(order_date, '%A') AS weekday, count(*) AS orders FROM pizza_orders GROUP BY 1;

SELECT hour AS busiest_hour, orders FROM pizza_report_hour ORDER BY orders DESC, hour LIMIT 1;
SELECT weekday AS busiest_weekday, orders FROM pizza_report_weekday ORDER BY orders DESC, weekday LIMIT 1;
