-- job: order_totals
-- description: One row per generated order with its amount (lines x quantity + tax + shipping), the input of customer_summary
-- param: orders table = orders -- orders: order_id, customer_id, order_ts (from order_analysis)
-- param: details table = order_details -- order lines: order_id, price, quantity, tax_rate, shipping_rate
-- param: out table = order_totals -- output: order_id, customer_id, order_ts, amount
--
-- Seed 000's order cost: price x quantity + tax_rate + shipping_rate per line (the rates are
-- amounts). An order whose lines were all lost to dead letters is kept with amount 0.
CREATE OR REPLACE TABLE ${out} AS
SELECT o.order_id, o.customer_id, o.order_ts,
       COALESCE(sum(d.price * d.quantity + COALESCE(d.tax_rate, 0) + COALESCE(d.shipping_rate, 0)), 0.0) AS amount
FROM ${orders} o LEFT JOIN ${details} d ON d.order_id = o.order_id
GROUP BY o.order_id, o.customer_id, o.order_ts;

SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, round(sum(amount), 2) AS revenue FROM ${out};
