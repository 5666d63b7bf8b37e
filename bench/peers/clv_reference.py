"""Prints the reference numbers of bench/peers/clv_reference.md from lifetimes 0.11.3 (17 significant digits).

    python bench/peers/clv_reference.py [CDNOW_sample.txt]

The CDNOW sample defaults to lifetimes' own copy (identical to shared/datasets/cdnow/CDNOW_sample.txt).
"""
import sys
import warnings

warnings.simplefilter("ignore")

import numpy as np
import pandas as pd
from scipy import integrate
from scipy.optimize import minimize
from autograd import value_and_grad, hessian

import lifetimes
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.datasets import load_cdnow_summary, load_cdnow_summary_data_with_monetary_value
from lifetimes.utils import summary_data_from_transaction_data, _scale_time


def g(v):
    return f"{float(v):.17g}"


def total_ll(params, f, r, T):
    """Total BG/NBD log-likelihood, unscaled time, no penalty."""
    w = np.ones(len(f))
    return -float(BetaGeoFitter._negative_log_likelihood(
        np.log(params), np.asarray(f).astype(int), np.asarray(r, float), np.asarray(T, float), w, 0.0)) * len(f)


def refined_bgnbd(bgf, f, r, T):
    """lifetimes' own objective (scaled, log-params), minimised far past tol=1e-7; returns unscaled params."""
    f = np.asarray(f).astype(int)
    s = _scale_time(np.asarray(T, float))
    args = (f, np.asarray(r, float) * s, np.asarray(T, float) * s, np.ones(len(f)), 0.0)
    x0 = np.log([bgf.params_["r"], bgf.params_["alpha"] * s, bgf.params_["a"], bgf.params_["b"]])
    fun = BetaGeoFitter._negative_log_likelihood
    x = x0
    for _ in range(20):  # Newton on the exact autograd Hessian
        gr = value_and_grad(fun)(x, *args)[1]
        x = x - np.linalg.solve(hessian(fun)(x, *args), gr)
    p = np.exp(x)
    p[1] /= s
    return p, np.max(np.abs(value_and_grad(fun)(x, *args)[1]))


def replicate_minimize(fun, n, args):
    """What BaseFitter._fit runs, to report iterations (lifetimes does not keep them)."""
    out = minimize(value_and_grad(fun), jac=True, method=None, tol=1e-7, x0=0.1 * np.ones(n), args=args,
                   options={"disp": False})
    return out


def section_a(sample):
    print("## a. CDNOW sample, calibration 1997-01-01 .. 1997-09-30")
    tx = pd.read_csv(sample, sep=r"\s+", header=None, names=["master_id", "customer", "date", "cds", "amount"],
                     dtype={"master_id": str, "customer": str, "date": str})
    tx["date"] = pd.to_datetime(tx["date"], format="%Y%m%d")
    print(f"transactions {len(tx)}, customers {tx.customer.nunique()}, dates {tx.date.min().date()} .. "
          f"{tx.date.max().date()}")
    cal = tx[tx.date <= "1997-09-30"]
    print(f"calibration transactions {len(cal)}")

    shipped = load_cdnow_summary(index_col=[0])
    shipped_m = load_cdnow_summary_data_with_monetary_value()
    fits = {
        "shipped cdnow_customers_summary.csv (2-decimal weeks)": shipped,
        "transactions, freq='D', freq_multiplier=7 (exact weeks = days/7)": summary_data_from_transaction_data(
            cal, "customer", "date", monetary_value_col="amount", observation_period_end="1997-09-30",
            freq="D", freq_multiplier=7),
        "transactions, freq='W' (whole weeks, W-SUN periods)": summary_data_from_transaction_data(
            cal, "customer", "date", monetary_value_col="amount", observation_period_end="1997-09-30", freq="W"),
    }
    for name, s in fits.items():
        f, r, T = s["frequency"], s["recency"], s["T"]
        bgf = BetaGeoFitter(0.0).fit(f, r, T)
        p = [bgf.params_[k] for k in ("r", "alpha", "a", "b")]
        s_ = _scale_time(np.asarray(T, float))
        out = replicate_minimize(BetaGeoFitter._negative_log_likelihood, 4,
                                 (np.asarray(f).astype(int), np.asarray(r) * s_, np.asarray(T) * s_,
                                  np.ones(len(f)), 0.0))
        ref, gmax = refined_bgnbd(bgf, f, r, T)
        print(f"\n### BG/NBD on {name}")
        print(f"customers {len(s)}, repeat customers {(f > 0).sum()}, sum x {int(f.sum())}, max T {g(T.max())}")
        for k, v, rv in zip(("r", "alpha", "a", "b"), p, ref):
            print(f"{k:6s} {g(v)}   (Newton-refined MLE {g(rv)}, rel diff {abs(v - rv) / rv:.2e})")
        print(f"total log-likelihood (unscaled) {g(total_ll(p, f, r, T))}   (at refined MLE {g(total_ll(ref, f, r, T))})")
        print(f"mean NLL unscaled {g(-total_ll(p, f, r, T) / len(f))}")
        print(f"lifetimes _negative_log_likelihood_ (mean NLL, scaled time) {g(bgf._negative_log_likelihood_)}")
        print(f"BFGS: nit {out.nit}, nfev {out.nfev}, success {out.success}, message {out.message!r}; "
              f"max |grad| at refined {gmax:.1e}")
        if "monetary_value" in s:
            rep = s[(s.frequency > 0) & (s.monetary_value > 0)]
            ggf = GammaGammaFitter(0.0).fit(rep["frequency"], rep["monetary_value"])
            print(f"Gamma-Gamma on {len(rep)} repeat customers: p {g(ggf.params_['p'])} q {g(ggf.params_['q'])} "
                  f"v {g(ggf.params_['v'])}; mean NLL {g(ggf._negative_log_likelihood_)}")

    rep = shipped_m[shipped_m.frequency > 0]
    ggf = GammaGammaFitter(0.0).fit(rep["frequency"], rep["monetary_value"])
    gout = replicate_minimize(GammaGammaFitter._negative_log_likelihood, 3,
                              (rep["frequency"].values.astype(float), rep["monetary_value"].values.astype(float),
                               np.ones(len(rep)), 0.0))
    print(f"\n### Gamma-Gamma on shipped cdnow_customers_summary_with_transactions.csv (zbar), frequency > 0")
    print(f"customers {len(rep)}; p {g(ggf.params_['p'])} q {g(ggf.params_['q'])} v {g(ggf.params_['v'])}")
    print(f"mean NLL {g(ggf._negative_log_likelihood_)}, total LL {g(-ggf._negative_log_likelihood_ * len(rep))}; "
          f"BFGS nit {gout.nit}")
    d7 = fits["transactions, freq='D', freq_multiplier=7 (exact weeks = days/7)"].sort_index()
    sm = shipped_m.copy()
    sm.index = [f"{i:04d}" for i in sm.index]
    print(f"max |zbar - monetary_value(D,7)| {np.max(np.abs(sm['monetary_value'].values - d7['monetary_value'].values)):.3g}; "
          f"max |T - T(D,7)| {np.max(np.abs(sm['T'].values - d7['T'].values)):.3g}")


PARAMS = dict(r=0.243, alpha=4.414, a=0.793, b=2.426)
CASES = [(0, 0, 38.86), (2, 30.43, 38.86), (1, 1.71, 38.86), (5, 36, 38.86), (10, 38.5, 39), (0, 0, 10)]


def p_none_numeric(x, tx, T, t, r, alpha, a, b):
    """P(X(T, T+t) = 0 | x, tx, T) by 2-D quadrature over the (lambda, p) posterior: an independent check."""
    def lik(lam, p, extra):
        alive = (1 - p) ** x * lam ** x * np.exp(-lam * (T + extra))
        dead = p * (1 - p) ** (x - 1) * lam ** x * np.exp(-lam * tx) if x > 0 else 0.0
        return alive + dead

    def prior(lam, p):
        return lam ** (r - 1) * np.exp(-alpha * lam) * p ** (a - 1) * (1 - p) ** (b - 1)

    opts = dict(epsabs=0, epsrel=1e-12, limit=200)
    num = integrate.nquad(lambda lam, p: prior(lam, p) * lik(lam, p, t), [[0, np.inf], [0, 1]], opts=[opts, opts])[0]
    den = integrate.nquad(lambda lam, p: prior(lam, p) * lik(lam, p, 0.0), [[0, np.inf], [0, 1]], opts=[opts, opts])[0]
    return num / den


def section_b():
    print("\n## b. BG/NBD fixed cases, params", PARAMS)
    bgf = BetaGeoFitter()
    bgf.params_ = pd.Series(PARAMS)
    r, alpha, a, b = PARAMS.values()
    print("| x | t_x | T | loglik (one row) | p_alive | E[X(1)] | E[X(52)] | P(X(1)>0) | P(X(1)>0) quadrature |")
    print("|---|---|---|---|---|---|---|---|---|")
    for x, tx, T in CASES:
        ll = -float(BetaGeoFitter._negative_log_likelihood(
            np.log([r, alpha, a, b]), np.array([x]), np.array([float(tx)]), np.array([float(T)]), np.ones(1), 0.0))
        pa = float(bgf.conditional_probability_alive(x, tx, T)[0])
        e1 = float(bgf.conditional_expected_number_of_purchases_up_to_time(1, x, tx, T))
        e52 = float(bgf.conditional_expected_number_of_purchases_up_to_time(52, x, tx, T))
        pany = pa * -np.expm1(-(r + x) * np.log1p(1 / (alpha + T)))
        num = 1 - p_none_numeric(x, tx, T, 1.0, r, alpha, a, b)
        print(f"| {x} | {tx} | {T} | {g(ll)} | {g(pa)} | {g(e1)} | {g(e52)} | {g(pany)} | {g(num)} |")
    print(f"\nexpected_number_of_purchases_up_to_time(52) = {g(bgf.expected_number_of_purchases_up_to_time(52))}")
    print(f"expected_number_of_purchases_up_to_time(1) = {g(bgf.expected_number_of_purchases_up_to_time(1))}")
    for x, tx, T in CASES:
        for t in (1, 52):
            z = t / (alpha + T + t)
            print(f"hyp2f1({g(r + x)}, {g(b + x)}, {g(a + b + x - 1)}, {g(z)}) = "
                  f"{g(__import__('scipy.special', fromlist=['hyp2f1']).hyp2f1(r + x, b + x, a + b + x - 1, z))}")


def section_c():
    print("\n## c. Gamma-Gamma conditional_expected_average_profit, p=6.25 q=3.74 v=15.45")
    ggf = GammaGammaFitter()
    ggf.params_ = pd.Series(dict(p=6.25, q=3.74, v=15.45))
    for x, m in [(1, 20.0), (5, 35.5), (10, 12.0)]:
        print(f"({x}, {m}) -> {g(ggf.conditional_expected_average_profit(x, m))}")
    print(f"population mean v*p/(q-1) = {g(15.45 * 6.25 / (3.74 - 1))}")


if __name__ == "__main__":
    print("lifetimes", lifetimes.__version__, "numpy", np.__version__, "pandas", pd.__version__,
          "scipy", __import__("scipy").__version__)
    section_a(sys.argv[1] if len(sys.argv) > 1 else
              __import__("os").path.join(__import__("os").path.dirname(lifetimes.__file__), "datasets",
                                         "CDNOW_sample.txt"))
    section_b()
    section_c()
