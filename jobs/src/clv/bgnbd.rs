//! BG/NBD (Fader, Hardie and Lee 2005, "Counting your customers the easy way"): the likelihood of
//! one customer's (x, t_x, T) with its gradient, and the per-customer predictions, written to give
//! what Python `lifetimes` 0.11.3 gives (`BetaGeoFitter`; the formulas it uses are spelled out in
//! `bench/peers/clv_reference.md`).
//!
//! x is the number of repeat purchases, t_x the time of the last one and T the time since the first
//! purchase, all in the summary's unit (days or weeks from the first purchase).

use super::special::{digamma, ln_gamma, one_minus_euler};

/// BG/NBD parameters: purchase rates ~ Gamma(r, alpha), drop-out probabilities ~ Beta(a, b).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BgNbd {
    /// Gamma shape of the purchase rate.
    pub r: f64,
    /// Gamma scale of the purchase rate (in the summary's time unit).
    pub alpha: f64,
    /// Beta a of the drop-out probability.
    pub a: f64,
    /// Beta b of the drop-out probability.
    pub b: f64,
}

/// The terms of the likelihood that depend on x only, computed once per distinct x.
#[derive(Debug, Clone, Copy)]
struct XTerms {
    lg_rx: f64,
    lg_bx: f64,
    lg_abx: f64,
    dg_rx: f64,
    dg_bx: f64,
    dg_abx: f64,
}

/// Evaluates the log-likelihood and its gradient over many customers at one parameter point,
/// caching what depends on x alone (customers share few distinct x).
pub struct LikelihoodEval {
    p: BgNbd,
    base: f64,
    dg_r: f64,
    dg_ab: f64,
    dg_b: f64,
    cache: Vec<Option<XTerms>>,
}

impl LikelihoodEval {
    /// An evaluator at `p`.
    pub fn new(p: BgNbd) -> Self {
        let base = -ln_gamma(p.r) + p.r * p.alpha.ln() + ln_gamma(p.a + p.b) - ln_gamma(p.b);
        Self { p, base, dg_r: digamma(p.r), dg_ab: digamma(p.a + p.b), dg_b: digamma(p.b), cache: Vec::new() }
    }

    fn x_terms(&mut self, x: f64) -> XTerms {
        let p = self.p;
        let compute = || XTerms {
            lg_rx: ln_gamma(p.r + x),
            lg_bx: ln_gamma(p.b + x),
            lg_abx: ln_gamma(p.a + p.b + x),
            dg_rx: digamma(p.r + x),
            dg_bx: digamma(p.b + x),
            dg_abx: digamma(p.a + p.b + x),
        };
        if x.fract() != 0.0 || !(0.0..100_000.0).contains(&x) {
            return compute();
        }
        let i = x as usize;
        if self.cache.len() <= i {
            self.cache.resize(i + 1, None);
        }
        *self.cache[i].get_or_insert_with(compute)
    }

    /// ln L of one customer and d ln L / d(r, alpha, a, b).
    pub fn customer(&mut self, x: f64, t_x: f64, t: f64) -> (f64, [f64; 4]) {
        let BgNbd { r, alpha, a, b } = self.p;
        let xt = self.x_terms(x);
        let rx = r + x;
        let a3 = -rx * (alpha + t).ln();
        let a4 = a.ln() - (b + x.max(1.0) - 1.0).ln() - rx * (t_x + alpha).ln();
        let ll_common = self.base + xt.lg_rx + xt.lg_bx - xt.lg_abx;
        // ln(e^A3 + [x>0] e^A4), and the shares w3, w4 of the two terms.
        let (mix, w3, w4) = if x > 0.0 {
            let m = a3.max(a4);
            let (e3, e4) = ((a3 - m).exp(), (a4 - m).exp());
            (m + (e3 + e4).ln(), e3 / (e3 + e4), e4 / (e3 + e4))
        } else {
            (a3, 1.0, 0.0)
        };
        let ll = ll_common + mix;
        let d_r = xt.dg_rx - self.dg_r + alpha.ln() - w3 * (alpha + t).ln() - w4 * (t_x + alpha).ln();
        let d_alpha = r / alpha - w3 * rx / (alpha + t) - w4 * rx / (t_x + alpha);
        let d_a = self.dg_ab - xt.dg_abx + w4 / a;
        let d_b = self.dg_ab + xt.dg_bx - self.dg_b - xt.dg_abx - w4 / (b + x - 1.0).max(f64::MIN_POSITIVE);
        (ll, [d_r, d_alpha, d_a, d_b])
    }
}

impl BgNbd {
    /// P(alive at T | x, t_x, T); 1 for a customer with no repeat purchase (in BG/NBD a customer
    /// can only drop out right after a purchase).
    pub fn p_alive(&self, x: f64, t_x: f64, t: f64) -> f64 {
        if x == 0.0 {
            return 1.0;
        }
        let log_div = (self.r + x) * ((self.alpha + t) / (self.alpha + t_x)).ln() + (self.a / (self.b + x - 1.0)).ln();
        1.0 / (1.0 + log_div.exp())
    }

    /// E[purchases in (T, T + horizon] | x, t_x, T] (the paper's eq. 10; lifetimes'
    /// `conditional_expected_number_of_purchases_up_to_time`). NaN when a = 1, where the formula
    /// divides by zero (as lifetimes' does).
    pub fn expected_purchases(&self, horizon: f64, x: f64, t_x: f64, t: f64) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        if horizon == 0.0 {
            return 0.0;
        }
        let z = horizon / (alpha + t + horizon);
        // 1 - 2F1(r+x, b+x; a+b+x-1; z) ((alpha+T)/(alpha+T+t))^(r+x), through Euler's transform:
        // the two powers of (1 - z) combine to (1 - z)^(a-1).
        let numer = one_minus_euler(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z, a - 1.0);
        let mut denom = 1.0;
        if x > 0.0 {
            denom += a / (b + x - 1.0) * ((alpha + t) / (alpha + t_x)).powf(r + x);
        }
        (a + b + x - 1.0) / (a - 1.0) * numer / denom
    }

    /// P(at least one purchase in (T, T + horizon] | x, t_x, T): alive with probability
    /// [`p_alive`](Self::p_alive), and alive with rate lambda ~ Gamma(r + x, alpha + T) a customer
    /// makes none in the horizon with probability ((alpha+T)/(alpha+T+horizon))^(r+x).
    pub fn p_any_purchase(&self, horizon: f64, x: f64, t_x: f64, t: f64) -> f64 {
        let none_if_alive = -(self.r + x) * (horizon / (self.alpha + t)).ln_1p();
        self.p_alive(x, t_x, t) * -none_if_alive.exp_m1()
    }

    /// E[purchases in (0, t]] of a new customer (the paper's eq. 9).
    pub fn expected_purchases_new(&self, horizon: f64) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        if horizon == 0.0 {
            return 0.0;
        }
        let z = horizon / (alpha + horizon);
        (a + b - 1.0) / (a - 1.0) * one_minus_euler(a + b - 1.0 - r, a - 1.0, a + b - 1.0, z, a - 1.0)
    }

    /// Discounted value over `months` months: Σₖ spend · (E(k·f) - E((k-1)·f)) / (1 + rate)^k with
    /// E the conditional expectation and f the periods per month, lifetimes'
    /// `customer_lifetime_value`.
    pub fn lifetime_value(&self, spend: f64, months: u32, periods_per_month: f64, discount_rate: f64, x: f64, t_x: f64, t: f64) -> f64 {
        let mut value = 0.0;
        let mut previous = 0.0;
        for k in 1..=months {
            let e = self.expected_purchases(k as f64 * periods_per_month, x, t_x, t);
            value += spend * (e - previous) / (1.0 + discount_rate).powi(k as i32);
            previous = e;
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAPER: BgNbd = BgNbd { r: 0.243, alpha: 4.414, a: 0.793, b: 2.426 };

    /// (x, t_x, T, LL_i, p_alive, E[X(1)], E[X(52)], P(X(1)>0)) from lifetimes 0.11.3 at the paper's
    /// parameters (`bench/peers/clv_reference.md`, table b).
    const CASES: &[(f64, f64, f64, f64, f64, f64, f64, f64)] = &[
        (0.0, 0.0, 38.86, -0.55471327643815849, 1.0, 0.005595657889482763, 0.25207302228245038, 0.0055361009029390789),
        (2.0, 30.43, 38.86, -9.4586063070662707, 0.72657857008067295, 0.037447969741730654, 1.5587208064320972, 0.036293998637078363),
        (1.0, 1.71, 38.86, -4.4690932750325878, 0.21210098537737909, 0.0060629517982834545, 0.25982346486862234, 0.0059383352583224792),
        (5.0, 36.0, 38.86, -17.906027369348028, 0.8498966056045838, 0.10226296673247944, 4.0814505103834566, 0.095939711295677479),
        (10.0, 38.5, 39.0, -27.475237411787241, 0.92751773963984285, 0.21715641530459026, 8.4540272539162586, 0.19297330852052505),
        (0.0, 0.0, 10.0, -0.28757073162625224, 1.0, 0.016683369291141285, 0.62643750515774066, 0.016167405651065083),
    ];

    fn close(got: f64, want: f64, rel: f64) -> bool {
        ((got - want) / want).abs() < rel
    }

    #[test]
    fn matches_lifetimes_on_fixed_cases() {
        let mut eval = LikelihoodEval::new(PAPER);
        for &(x, tx, t, ll, alive, e1, e52, any1) in CASES {
            assert!(close(eval.customer(x, tx, t).0, ll, 1e-12), "LL({x}, {tx}, {t})");
            assert!(close(PAPER.p_alive(x, tx, t), alive, 1e-12), "p_alive({x}, {tx}, {t})");
            assert!(close(PAPER.expected_purchases(1.0, x, tx, t), e1, 1e-11), "E[X(1)]({x}, {tx}, {t}) = {}", PAPER.expected_purchases(1.0, x, tx, t));
            assert!(close(PAPER.expected_purchases(52.0, x, tx, t), e52, 1e-11), "E[X(52)]({x}, {tx}, {t})");
            assert!(close(PAPER.p_any_purchase(1.0, x, tx, t), any1, 1e-12), "P(X(1)>0)({x}, {tx}, {t})");
        }
        assert!(close(PAPER.expected_purchases_new(52.0), 1.446050595396398, 1e-12));
        assert!(close(PAPER.expected_purchases_new(1.0), 0.05326789117165627, 1e-12));
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for &(x, tx, t, ..) in CASES {
            let (_, grad) = LikelihoodEval::new(PAPER).customer(x, tx, t);
            let base = [PAPER.r, PAPER.alpha, PAPER.a, PAPER.b];
            for (i, g) in grad.iter().enumerate() {
                let h = 1e-6 * base[i];
                let at = |d: f64| {
                    let mut p = base;
                    p[i] += d;
                    LikelihoodEval::new(BgNbd { r: p[0], alpha: p[1], a: p[2], b: p[3] }).customer(x, tx, t).0
                };
                let numeric = (at(h) - at(-h)) / (2.0 * h);
                assert!((g - numeric).abs() < 1e-6 * (1.0 + numeric.abs()), "d/dp{i} at ({x}, {tx}, {t}): {g} vs {numeric}");
            }
        }
    }
}
