-- job: shop_prices
-- description: Seed 000 part 2: the cheapest product and the average order cost (price x quantity + tax + shipping)
-- param: products_csv path = lake/sources/orders/products.csv -- products: product_id, name, category, price
-- param: details_csv path = lake/sources/orders/order_details.csv -- seed 000's orders price table: price, quantity, tax_rate, shipping_rate
CREATE EXTERNAL TABLE shop_products_csv (product_id BIGINT NOT NULL, name VARCHAR NOT NULL, category VARCHAR, price DOUBLE NOT NULL)
  STORED AS CSV LOCATION ${products_csv} OPTIONS ('format.has_header' 'true');
CREATE EXTERNAL TABLE shop_lines_csv (order_id BIGINT NOT NULL, line_no INT, product_id BIGINT NOT NULL, price DOUBLE NOT NULL, quantity INT NOT NULL, tax_rate DOUBLE, shipping_rate DOUBLE)
  STORED AS CSV LOCATION ${details_csv} OPTIONS ('format.has_header' 'true');

CREATE OR REPLACE TABLE shop_report AS
SELECT (SELECT name FROM shop_products_csv ORDER BY price, product_id LIMIT 1) AS cheapest_product,
       (SELECT min(price) FROM shop_products_csv) AS cheapest_price,
       avg(price * quantity + coalesce(tax_rate, 0) + coalesce(shipping_rate, 0)) AS average_order_cost
FROM shop_lines_csv;

SELECT cheapest_product, cheapest_price, round(average_order_cost, 2) AS average_order_cost FROM shop_report;
