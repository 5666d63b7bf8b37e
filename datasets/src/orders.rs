//! `orders`: a music shop's customers, products, orders and order lines, in the shape of seed 002
//! (orders with customer and timestamp; order_details with product, price, quantity, tax and
//! shipping) and seed 000 (`products` with name and price; its `orders` price table is
//! `order_details` here).
//!
//! Purchases follow a BG/NBD-like process: each customer buys at their own Poisson rate
//! (Gamma-distributed across customers) and after each purchase drops out with their own
//! probability (Beta-distributed), so some customers buy once and a few buy for two years. Orders
//! lean to weekends and to lunchtime and evening hours. A small share of orders is submitted twice
//! (same customer and lines, seconds later): `duplicates.csv` lists them.
//!
//! `tax_rate` and `shipping_rate` are amounts, not ratios: seed 000's average order cost is
//! `price * quantity + tax_rate + shipping_rate`.

use std::path::Path;

use anyhow::Result;
use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeDelta};
use rand::Rng as _;
use rand::seq::IndexedRandom;
use rand_distr::{Beta, Distribution, Exp, Gamma, Zipf};

use crate::names::{Language, album_title, artist_name};
use crate::seeded_rng::{Rng, stream};
use crate::sinks::{ColumnKind, CsvSink, DirtyRow};

/// Customers at scale 1 (about four orders each).
pub const CUSTOMERS_PER_SCALE: f64 = 2_500.0;
/// Products in the shop.
pub const PRODUCTS: u64 = 200;
/// Share of orders submitted twice.
pub const DUPLICATE_RATE: f64 = 0.005;

const CATEGORIES: [(&str, f64, f64); 8] = [
    ("CD", 9.99, 19.99),
    ("Vinyl", 19.99, 39.99),
    ("Cassette", 6.99, 12.99),
    ("Headphones", 29.0, 399.0),
    ("Turntable", 99.0, 899.0),
    ("T-shirt", 19.99, 29.99),
    ("Guitar strings", 5.99, 14.99),
    ("Gift card", 25.0, 100.0),
];

/// A product: id, name, category index, price.
#[derive(Debug, Clone)]
pub struct Product {
    /// 1-based id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Index into the categories.
    pub category: usize,
    /// Unit price.
    pub price: f64,
}

/// Product `id` (1-based).
pub fn product(seed: u64, id: u64) -> Product {
    let rng = &mut stream(seed, "product", id);
    let category = rng.random_range(0..CATEGORIES.len());
    let (label, lo, hi) = CATEGORIES[category];
    let name = match category {
        0..=2 => format!("{} - {} ({label})", artist_name(rng, Language::English), album_title(rng, Language::English)),
        3 => format!("{} Studio Headphones {}", ["Sonora", "Aurum", "Basswave"].choose(rng).expect("non-empty"), rng.random_range(100..999)),
        4 => format!("{} Turntable TT-{}", ["Rotary", "Spindle", "Groove"].choose(rng).expect("non-empty"), rng.random_range(10..99)),
        5 => format!("{} Tour T-shirt", artist_name(rng, Language::English)),
        6 => format!("Guitar strings {}-{}", rng.random_range(9..12), rng.random_range(42..52)),
        _ => format!("Gift card {}", rng.random_range(1..5) * 25),
    };
    // Shop prices end in .99, except gift cards.
    let price = if category == 7 { (rng.random_range(1..5) * 25) as f64 } else { rng.random_range(lo..hi).floor() + 0.99 };
    Product { id, name, category, price }
}

/// Day-of-week weights, Monday first: weekends are busiest.
const WEEKDAY_WEIGHT: [f64; 7] = [0.70, 0.65, 0.70, 0.75, 0.90, 1.00, 0.85];
/// Hour-of-day weights: lunchtime and evening peaks.
const HOUR_WEIGHT: [u32; 24] = [2, 1, 1, 1, 1, 1, 2, 3, 5, 6, 7, 9, 12, 11, 8, 7, 7, 8, 10, 12, 12, 10, 6, 4];

fn order_time(rng: &mut Rng, day: NaiveDate) -> NaiveDateTime {
    // Seasonality by thinning: move a purchase day forward until its weekday accepts it.
    let mut day = day;
    for _ in 0..6 {
        if rng.random_bool(WEEKDAY_WEIGHT[day.weekday().num_days_from_monday() as usize]) {
            break;
        }
        day = day.succ_opt().expect("in range");
    }
    let total: u32 = HOUR_WEIGHT.iter().sum();
    let mut x = rng.random_range(0..total);
    let mut hour = 23;
    for (h, w) in HOUR_WEIGHT.iter().enumerate() {
        if x < *w {
            hour = h as u32;
            break;
        }
        x -= w;
    }
    day.and_hms_opt(hour, rng.random_range(0..60), rng.random_range(0..60)).expect("valid time")
}

/// Counts of what was written.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct OrderCounts {
    /// Customers.
    pub customers: u64,
    /// Products.
    pub products: u64,
    /// Orders, duplicates included.
    pub orders: u64,
    /// Order lines.
    pub order_details: u64,
    /// Orders that duplicate an earlier one.
    pub duplicate_orders: u64,
    /// Corrupted rows.
    #[serde(skip)]
    pub dirty: Vec<DirtyRow>,
}

/// Writes customers, products, orders, order_details and duplicates CSVs into `dir`.
pub fn generate(seed: u64, customers: u64, dirty_rate: f64, dir: &Path, mut progress: impl FnMut(u64)) -> Result<OrderCounts> {
    use ColumnKind::*;
    let mut counts = OrderCounts::default();
    let products: Vec<Product> = (1..=PRODUCTS).map(|id| product(seed, id)).collect();
    let by_category: Vec<Vec<&Product>> = (0..CATEGORIES.len()).map(|c| products.iter().filter(|p| p.category == c).collect()).collect();
    let mut product_sink = CsvSink::create(dir, "products.csv", vec![("product_id", Number, true), ("name", Text, true), ("category", Text, true), ("price", Number, true)], 0.0, seed)?;
    for p in &products {
        product_sink.write(vec![p.id.to_string(), p.name.clone(), CATEGORIES[p.category].0.to_string(), format!("{:.2}", p.price)])?;
        counts.products += 1;
    }
    product_sink.close()?;

    let mut customer_sink = CsvSink::create(dir, "customers.csv", vec![("customer_id", Number, true), ("name", Text, true), ("country", Text, false), ("signup_date", Timestamp, false)], 0.0, seed)?;
    let mut order_sink = CsvSink::create(dir, "orders.csv", vec![("order_id", Number, true), ("customer_id", Number, true), ("order_ts", Timestamp, true)], dirty_rate, seed)?;
    let mut line_sink = CsvSink::create(
        dir,
        "order_details.csv",
        vec![("order_id", Number, true), ("line_no", Number, true), ("product_id", Number, true), ("price", Number, true), ("quantity", Number, true), ("tax_rate", Number, false), ("shipping_rate", Number, false)],
        dirty_rate,
        seed,
    )?;
    let mut duplicate_sink = CsvSink::create(dir, "duplicates.csv", vec![("duplicate_order_id", Number, true), ("original_order_id", Number, true)], 0.0, seed)?;

    // First purchases favour a few "starter" products, so one is clearly bought first most often.
    let starters = Zipf::new(PRODUCTS as f64, 1.3).expect("valid zipf");
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid date");
    let window_days = 730.0;
    let mut next_order = 1u64;

    for c in 1..=customers {
        let rng = &mut stream(seed, "customer", c);
        let country = *["US", "GB", "DE", "FR", "SE", "JP", "BR", "ES"].choose(rng).expect("non-empty");
        let vat = match country { "US" => 0.07, "GB" => 0.20, "DE" => 0.19, "FR" => 0.20, "SE" => 0.25, "JP" => 0.10, "BR" => 0.17, _ => 0.21 };
        customer_sink.write(vec![c.to_string(), artist_name(rng, Language::English), country.to_string(), (start - TimeDelta::days(rng.random_range(0..400))).to_string()])?;
        counts.customers += 1;

        let rate: f64 = Gamma::new(0.9f64, 1.0 / 18.0).expect("valid").sample(rng);
        let rate = rate.max(1e-4); // purchases per day
        let dropout = Beta::new(1.0, 3.0).expect("valid").sample(rng);
        let favourite = rng.random_range(0..CATEGORIES.len());
        let mut t = rng.random_range(0.0..540.0);
        let mut first = true;
        while t < window_days {
            let at = order_time(rng, start + TimeDelta::days(t as i64));
            let order_id = next_order;
            next_order += 1;
            let lines = *[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 4].choose(rng).expect("non-empty");
            let mut details = Vec::with_capacity(lines);
            for line in 1..=lines {
                let p = if first && line == 1 {
                    &products[starters.sample(rng) as usize - 1]
                } else if rng.random_bool(0.7) {
                    by_category[favourite].choose(rng).copied().unwrap_or(&products[0])
                } else {
                    products.choose(rng).expect("non-empty")
                };
                let quantity = *[1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3].choose(rng).expect("non-empty");
                let subtotal = p.price * quantity as f64;
                let shipping = if subtotal > 50.0 { 0.0 } else { [3.99, 4.99, 6.99].choose(rng).copied().expect("non-empty") };
                details.push(vec![
                    order_id.to_string(),
                    line.to_string(),
                    p.id.to_string(),
                    format!("{:.2}", p.price),
                    quantity.to_string(),
                    format!("{:.2}", subtotal * vat),
                    format!("{shipping:.2}"),
                ]);
            }
            let ts = at.format("%Y-%m-%d %H:%M:%S").to_string();
            order_sink.write(vec![order_id.to_string(), c.to_string(), ts])?;
            for d in &details {
                line_sink.write(d.clone())?;
            }
            counts.orders += 1;
            counts.order_details += lines as u64;

            if rng.random_bool(DUPLICATE_RATE) {
                // Submitted twice: same customer and lines, a few seconds to two minutes later.
                let dup_id = next_order;
                next_order += 1;
                let later = (at + TimeDelta::seconds(rng.random_range(1..120))).format("%Y-%m-%d %H:%M:%S").to_string();
                order_sink.write(vec![dup_id.to_string(), c.to_string(), later])?;
                for d in &details {
                    let mut d = d.clone();
                    d[0] = dup_id.to_string();
                    line_sink.write(d)?;
                }
                duplicate_sink.write(vec![dup_id.to_string(), order_id.to_string()])?;
                counts.orders += 1;
                counts.order_details += lines as u64;
                counts.duplicate_orders += 1;
            }
            first = false;
            if rng.random_bool(dropout) {
                break;
            }
            t += Exp::new(rate).expect("rate > 0").sample(rng);
        }
        if c.is_multiple_of(1024) {
            progress(counts.orders);
        }
    }
    progress(counts.orders);
    customer_sink.close()?;
    duplicate_sink.close()?;
    counts.dirty.extend(order_sink.close()?);
    counts.dirty.extend(line_sink.close()?);
    Ok(counts)
}
