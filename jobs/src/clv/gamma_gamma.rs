//! The Gamma-Gamma spend model (Fader, Hardie and Lee 2005b; Hardie's note 025): a customer's
//! mean repeat spend m over x repeat purchases, with the likelihood's gradient for the fit and
//! the conditional expected spend, as lifetimes' `GammaGammaFitter` computes them.

use super::special::{digamma, ln_gamma};

/// Gamma-Gamma parameters: spend per purchase ~ Gamma(p, nu), nu ~ Gamma(q, v).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GammaGamma {
    /// Shape of the spend per purchase.
    pub p: f64,
    /// Shape of the customers' spend scales.
    pub q: f64,
    /// Rate of the customers' spend scales.
    pub v: f64,
}

/// The terms that depend on x alone: lnΓ(px+q) - lnΓ(px), ψ(px+q), ψ(px).
#[derive(Debug, Clone, Copy)]
struct XTerms {
    lg: f64,
    dg_pxq: f64,
    dg_px: f64,
}

/// Evaluates the likelihood of many customers at one parameter point, caching what depends on x
/// alone (a few hundred distinct x among a million customers): a customer then costs three logs.
pub struct SpendEval {
    gg: GammaGamma,
    lg_q: f64,
    dg_q: f64,
    ln_v: f64,
    cache: Vec<Option<XTerms>>,
}

impl SpendEval {
    /// An evaluator at `gg`.
    pub fn new(gg: GammaGamma) -> Self {
        Self { gg, lg_q: ln_gamma(gg.q), dg_q: digamma(gg.q), ln_v: gg.v.ln(), cache: Vec::new() }
    }

    fn x_terms(&mut self, x: f64) -> XTerms {
        let GammaGamma { p, q, .. } = self.gg;
        let compute = || XTerms { lg: ln_gamma(p * x + q) - ln_gamma(p * x), dg_pxq: digamma(p * x + q), dg_px: digamma(p * x) };
        if x.fract() != 0.0 || !(0.0..100_000.0).contains(&x) {
            return compute();
        }
        let i = x as usize;
        if self.cache.len() <= i {
            self.cache.resize(i + 1, None);
        }
        *self.cache[i].get_or_insert_with(compute)
    }

    /// ln L of one repeat customer (x >= 1 repeat purchases of mean m > 0) and d ln L / d(p, q, v).
    pub fn customer(&mut self, x: f64, m: f64) -> (f64, [f64; 3]) {
        let GammaGamma { p, q, v } = self.gg;
        let t = self.x_terms(x);
        let px = p * x;
        let xmv = x * m + v;
        let (ln_m, ln_x, ln_xmv) = (m.ln(), x.ln(), xmv.ln());
        let ll = t.lg - self.lg_q + q * self.ln_v + (px - 1.0) * ln_m + px * ln_x - (px + q) * ln_xmv;
        let d_p = x * (t.dg_pxq - t.dg_px + ln_m + ln_x - ln_xmv);
        let d_q = t.dg_pxq - self.dg_q + self.ln_v - ln_xmv;
        let d_v = q / v - (px + q) / xmv;
        (ll, [d_p, d_q, d_v])
    }
}

impl GammaGamma {
    /// ln L of one repeat customer and its gradient (see [`SpendEval::customer`]).
    pub fn customer(&self, x: f64, m: f64) -> (f64, [f64; 3]) {
        SpendEval::new(*self).customer(x, m)
    }

    /// E[spend per purchase | x, m]: a weighted mean of the population mean v·p/(q-1) and the
    /// customer's own m, with weight p·x/(p·x + q - 1) on m (x = 0 gets the population mean).
    pub fn expected_spend(&self, x: f64, m: f64) -> f64 {
        let GammaGamma { p, q, v } = *self;
        let w = p * x / (p * x + q - 1.0);
        (1.0 - w) * v * p / (q - 1.0) + w * m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_spend_matches_lifetimes() {
        // lifetimes 0.11.3 `conditional_expected_average_profit` (bench/peers/clv_reference.md, table c).
        let gg = GammaGamma { p: 6.25, q: 3.74, v: 15.45 };
        for (x, m, want) in [(1.0, 20.0, 24.645439377085651), (5.0, 35.5, 35.479185054427774), (10.0, 12.0, 12.976126609442057), (0.0, 0.0, 35.241788321167881)] {
            let got = gg.expected_spend(x, m);
            assert!(((got - want) / want).abs() < 1e-13, "E[M | {x}, {m}] = {got}, lifetimes {want}");
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let gg = GammaGamma { p: 6.25, q: 3.74, v: 15.45 };
        for (x, m) in [(1.0, 20.0), (5.0, 35.5), (10.0, 12.0)] {
            let (_, grad) = gg.customer(x, m);
            let base = [gg.p, gg.q, gg.v];
            for (i, g) in grad.iter().enumerate() {
                let h = 1e-6 * base[i];
                let at = |d: f64| {
                    let mut b = base;
                    b[i] += d;
                    GammaGamma { p: b[0], q: b[1], v: b[2] }.customer(x, m).0
                };
                let numeric = (at(h) - at(-h)) / (2.0 * h);
                assert!((g - numeric).abs() < 1e-6 * (1.0 + numeric.abs()), "d/dp{i} at ({x}, {m}): {g} vs {numeric}");
            }
        }
    }
}
