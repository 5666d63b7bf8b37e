//! Special functions of the customer models: lnΓ and digamma from `statrs`, and the Gauss
//! hypergeometric function ₂F₁ for real arguments and 0 <= z < 1.
//!
//! Why ₂F₁ is written here: no kept crate offers it safely. `special-fun` links the Cephes C library,
//! whose `exp`, `log` and `pow` would replace libm's for the whole binary (its README warns);
//! mathru's `f21` panics on some inputs and divides Γ of poles when c - a - b is an integer (it
//! is, for whole-number frequencies); `scirs2-special` pulls a scientific stack of ~100 crates.
//! The BG/NBD expressions only need 0 <= z < 1, where the Gauss series converges, and its Euler
//! transform makes the series short and well conditioned (see [`ln_hyp2f1`]). Accuracy is tested
//! against SciPy's `hyp2f1` in this module's tests.

pub use statrs::function::gamma::{digamma, ln_gamma};

/// Most terms a series may take before it is declared not converging (z within ~1e-5 of 1).
const MAX_TERMS: usize = 2_000_000;

/// The Gauss series Σₙ (a)ₙ(b)ₙ/(c)ₙ zⁿ/n! minus its first term (so 2F1 - 1), summed until a term
/// no longer changes the sum; `None` when it does not settle within [`MAX_TERMS`].
fn series_minus_one(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    let mut term = 1.0f64;
    let mut sum = 0.0f64;
    for n in 0..MAX_TERMS {
        let n = n as f64;
        term *= (a + n) * (b + n) / ((c + n) * (n + 1.0)) * z;
        sum += term;
        // Past the point where (a+n)(b+n)/((c+n)(n+1)) < 1 the terms shrink geometrically (ratio -> z),
        // so once one is below the last bit of the sum the rest are too.
        if term == 0.0 || (term.abs() <= f64::EPSILON * 0.25 * (1.0 + sum).abs() && n > (a.abs() + b.abs())) {
            return Some(sum);
        }
        if !term.is_finite() {
            return None;
        }
    }
    None
}

/// ln ₂F₁(a, b; c; z) for 0 <= z < 1 and c not 0, -1, -2, ..., where the value is positive;
/// NaN outside that domain or when the series does not settle (z within ~1e-5 of 1).
///
/// The series is summed in whichever of two equal forms has the smaller coefficients: the Gauss
/// series itself, or Euler's transform ₂F₁(a, b; c; z) = (1-z)^(c-a-b) ₂F₁(c-a, c-b; c; z). For
/// BG/NBD's conditional expectation ₂F₁(r+x, b+x; a+b+x-1; z) the direct series grows like
/// e^(xz) (it overflows for heavy buyers, where lifetimes falls back to the same transform), while
/// the transformed one has parameters a+b-1-r and a-1 that do not grow with x.
pub fn ln_hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    if !(0.0..1.0).contains(&z) || (c <= 0.0 && c.fract() == 0.0) || !(a.is_finite() && b.is_finite() && c.is_finite()) {
        return f64::NAN;
    }
    if z == 0.0 {
        return 0.0;
    }
    let (ea, eb) = (c - a, c - b);
    let euler = (ea * eb).abs() < (a * b).abs();
    let (sa, sb) = if euler { (ea, eb) } else { (a, b) };
    let Some(rest) = series_minus_one(sa, sb, c, z) else {
        return f64::NAN;
    };
    if rest <= -1.0 {
        return f64::NAN;
    }
    let ln_series = rest.ln_1p();
    if euler { ln_series + (c - a - b) * (-z).ln_1p() } else { ln_series }
}

/// ₂F₁(a, b; c; z) for 0 <= z < 1 (see [`ln_hyp2f1`]).
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    ln_hyp2f1(a, b, c, z).exp()
}

/// 1 - ₂F₁(c-a, c-b; c; z) (1-z)^(d), accurately when the result is small: BG/NBD's
/// `1 - hyp2f1(...) * ((alpha+T)/(alpha+T+t))^(r+x)` after Euler's transform, with
/// `d = (c-a-b) + (r+x)`. Computing it as -expm1(ln) keeps the digits a plain 1 - value loses for
/// short horizons (z near 0). NaN when the series does not settle.
pub fn one_minus_euler(ea: f64, eb: f64, c: f64, z: f64, d: f64) -> f64 {
    if z == 0.0 {
        return 0.0;
    }
    match series_minus_one(ea, eb, c, z) {
        Some(rest) if rest > -1.0 => -(rest.ln_1p() + d * (-z).ln_1p()).exp_m1(),
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (a, b, c, z, SciPy 1.17.1 `scipy.special.hyp2f1`), printed with `repr` in the peers' venv.
    const SCIPY: &[(f64, f64, f64, f64, f64)] = &[
        (10.243, 12.426, 12.219, 0.5449933971953801, 3675.2330249635443),
        (0.5, 0.5, 1.5, 0.25, 1.047197551196598),
        (0.243, 2.426, 2.219, 0.5723602131276958, 1.2610364407941586),
        (1.0, 1.0, 2.0, 0.9, 2.5584278811044943),
        (2.243, 4.426, 4.219, 0.05, 1.1283463327129535),
        (50.243, 52.426, 52.219, 0.3, 65129123.67033336),
        (0.243, 2.426, 2.219, 0.95, 2.4461866770309872),
        (200.243, 202.426, 202.219, 0.7, 6.462887757520794e104),
    ];

    #[test]
    fn hyp2f1_matches_scipy() {
        for &(a, b, c, z, want) in SCIPY {
            let got = hyp2f1(a, b, c, z);
            assert!(((got - want) / want).abs() < 1e-13, "2F1({a}, {b}; {c}; {z}) = {got}, SciPy {want}");
        }
    }

    #[test]
    fn hyp2f1_closed_forms() {
        // 2F1(1, 1; 2; z) = -ln(1-z)/z and 2F1(a, b; b; z) = (1-z)^-a.
        for z in [1e-6, 0.1, 0.5, 0.9, 0.99] {
            let want = -(-z as f64).ln_1p() / z;
            assert!(((hyp2f1(1.0, 1.0, 2.0, z) - want) / want).abs() < 1e-13, "z = {z}");
            let want = (1.0 - z).powf(-2.7);
            assert!(((hyp2f1(2.7, 3.1, 3.1, z) - want) / want).abs() < 1e-13, "z = {z}");
        }
    }

    #[test]
    fn hyp2f1_rejects_outside_its_domain() {
        assert!(hyp2f1(1.0, 1.0, 2.0, 1.0).is_nan());
        assert!(hyp2f1(1.0, 1.0, 2.0, -0.5).is_nan());
        assert!(hyp2f1(1.0, 1.0, -2.0, 0.5).is_nan());
        assert_eq!(hyp2f1(3.0, 4.0, 5.0, 0.0), 1.0);
    }

    #[test]
    fn ln_gamma_and_digamma_are_accurate() {
        // SciPy's gammaln and digamma.
        assert!((ln_gamma(0.243) - 1.3180435846996699).abs() < 1e-13);
        assert!((ln_gamma(123.4) - 469.3360974421906).abs() < 1e-11);
        assert!((digamma(2.426) - 0.6662079149687962).abs() < 1e-12);
        assert!((digamma(0.05) - -20.49784499129987).abs() < 1e-11);
    }
}
