"""lifetimes 0.11.3 as the peer engine for backbeat's customer-lifetime-value models (BG/NBD + Gamma-Gamma).

One process per run:

    python clv_peer.py --transactions CSV --customer-col C --date-col D --amount-col A \
        --calibration-end YYYY-MM-DD --freq D|W [--freq-multiplier 1] --penalizer 0.0 \
        --horizon-days 7 --out DIR

Steps, each timed separately:
  load     read the CSV (customer as a string, date parsed by pandas, --date-format if given),
           keep only transactions dated <= --calibration-end (see "calibration end" below).
  summary  lifetimes.utils.summary_data_from_transaction_data(..., monetary_value_col=amount,
           observation_period_end=calibration end, freq, freq_multiplier).
  fit      BetaGeoFitter(penalizer_coef).fit(frequency, recency, T) on every customer, then
           GammaGammaFitter(penalizer_coef).fit(frequency, monetary_value) on the repeat customers
           (frequency > 0; monetary_value > 0 too, which lifetimes requires).
  predict  per customer: p_alive, expected repeat purchases in the next t periods, P(at least one
           purchase in the next t periods), Gamma-Gamma expected average profit, and 12-month CLV
           (GammaGammaFitter.customer_lifetime_value, discount_rate 0.01 per month).

t is --horizon-days expressed in the summary's time unit: the unit is one day (freq D) or one week
(freq W) times --freq-multiplier, so t = horizon_days / (unit_days * multiplier).

Writes DIR/summary.csv (customer, frequency, recency, T, monetary_value) and DIR/predictions.csv
(customer, p_alive, expected_purchases, p_any_purchase, expected_avg_profit, clv), floats with 17
significant digits, rows sorted by customer id as a string. Prints one JSON line on stdout; everything else goes to
stderr.

Things a reimplementation must copy (all checked against lifetimes 0.11.3 source):
  * freq W: dates are floored to pandas weekly periods (W-SUN, so to the Monday that starts the
    week) before anything else, the observation end too; purchases in the same period are merged
    into one (their amounts summed); frequency = number of distinct periods - 1, recency and T are
    whole numbers of weeks between period starts. freq D with multiplier 7 gives fractional weeks
    (T = days / 7), the convention of Fader, Hardie and Lee's CDNOW data (T = 38.86).
  * calibration end: summary_data_from_transaction_data drops only transactions whose *floored*
    date is after the floored observation end, so with freq W it would keep purchases made later in
    the calibration end's week. This peer drops every transaction dated after --calibration-end
    first, as lifetimes' own calibration_and_holdout_data does.
  * monetary_value is the mean of the per-period amount sums, first period excluded; 0 for a
    customer with no repeat period.
  * "loglik" below is the total BG/NBD log-likelihood in the summary's own time unit, without
    the penalty. lifetimes' fitter reports something else, "nll_mean_scaled": the minimised
    objective, the *mean* negative log-likelihood over customers with time rescaled so that
    max(T) = 1, plus penalizer * sum(params_scaled**2) where alpha_scaled = alpha / max(T).
  * P(at least one purchase in (T, T+t]) has no lifetimes function for BG/NBD
    (conditional_probability_of_n_purchases_up_to_time exists only on ParetoNBDFitter). It is
    p_alive * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x)): a customer alive at T with rate
    lambda makes no purchase in t with probability exp(-lambda t), and the Gamma posterior of
    lambda given (x, T) and alive is Gamma(r + x, alpha + T).
"""
import argparse
import json
import os
import sys
import time
import warnings

warnings.simplefilter("ignore", FutureWarning)

import numpy as np
import pandas as pd


def arguments():
    p = argparse.ArgumentParser()
    p.add_argument("--transactions", required=True, help="CSV with a header row")
    p.add_argument("--customer-col", required=True)
    p.add_argument("--date-col", required=True)
    p.add_argument("--amount-col", required=True)
    p.add_argument("--date-format", default=None, help="strptime format, e.g. %%Y%%m%%d; default: pandas infers")
    p.add_argument("--calibration-end", required=True, help="YYYY-MM-DD, inclusive")
    p.add_argument("--freq", choices=["D", "W"], default="D")
    p.add_argument("--freq-multiplier", type=int, default=1,
                   help="lifetimes' freq_multiplier: --freq D --freq-multiplier 7 gives fractional weeks")
    p.add_argument("--penalizer", type=float, default=0.0)
    p.add_argument("--horizon-days", type=float, default=7.0)
    p.add_argument("--out", required=True)
    return p.parse_args()


def clv_unit(freq, multiplier):
    """The unit of T that customer_lifetime_value's freq must name ({"D": 30, "W": 4.345} per month)."""
    unit_days = {"D": 1, "W": 7}[freq] * multiplier
    if unit_days == 1:
        return "D", unit_days
    if unit_days == 7:
        return "W", unit_days
    raise SystemExit(f"freq {freq} x {multiplier} is neither days nor weeks: lifetimes' CLV cannot take it")


def main():
    a = arguments()
    import lifetimes
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    unit, unit_days = clv_unit(a.freq, a.freq_multiplier)
    t = a.horizon_days / unit_days

    start = time.perf_counter()
    tx = pd.read_csv(a.transactions, usecols=[a.customer_col, a.date_col, a.amount_col],
                     dtype={a.customer_col: str, a.date_col: str})
    tx[a.date_col] = pd.to_datetime(tx[a.date_col], format=a.date_format)
    tx[a.amount_col] = tx[a.amount_col].astype(float)
    cal_end = pd.Timestamp(a.calibration_end)
    tx = tx.loc[tx[a.date_col] <= cal_end]
    load_ms = (time.perf_counter() - start) * 1000.0

    start = time.perf_counter()
    summary = summary_data_from_transaction_data(
        tx, a.customer_col, a.date_col, monetary_value_col=a.amount_col,
        observation_period_end=cal_end, freq=a.freq, freq_multiplier=a.freq_multiplier,
    ).sort_index()
    summary_ms = (time.perf_counter() - start) * 1000.0
    f, r, T, m = summary["frequency"], summary["recency"], summary["T"], summary["monetary_value"]

    start = time.perf_counter()
    bgf = BetaGeoFitter(penalizer_coef=a.penalizer).fit(f, r, T)
    bg_fit_ms = (time.perf_counter() - start) * 1000.0
    repeat = (f > 0) & (m > 0)
    start = time.perf_counter()
    ggf = GammaGammaFitter(penalizer_coef=a.penalizer).fit(f[repeat], m[repeat])
    gg_fit_ms = (time.perf_counter() - start) * 1000.0

    rr, alpha, aa, bb = (float(bgf.params_[k]) for k in ("r", "alpha", "a", "b"))
    start = time.perf_counter()
    p_alive = np.asarray(bgf.conditional_probability_alive(f.values, r.values, T.values), dtype=float)
    expected = np.asarray(bgf.conditional_expected_number_of_purchases_up_to_time(t, f.values, r.values, T.values),
                          dtype=float)
    x, Tv = f.values, T.values
    p_any = p_alive * -np.expm1(-(rr + x) * np.log1p(t / (alpha + Tv)))
    profit = np.asarray(ggf.conditional_expected_average_profit(f, m), dtype=float)
    clv = np.asarray(ggf.customer_lifetime_value(bgf, f, r, T, m, time=12, discount_rate=0.01, freq=unit),
                     dtype=float)
    predict_ms = (time.perf_counter() - start) * 1000.0

    # Total log-likelihood in the summary's time unit, no penalty (see the module docstring).
    w = np.ones(len(f))
    nll_mean = BetaGeoFitter._negative_log_likelihood(
        np.log([rr, alpha, aa, bb]), x.astype(int), r.values, Tv, w, 0.0)
    loglik = -float(nll_mean) * len(f)
    gp, gq, gv = (float(ggf.params_[k]) for k in ("p", "q", "v"))
    gg_nll_mean = GammaGammaFitter._negative_log_likelihood(
        np.log([gp, gq, gv]), f[repeat].values, m[repeat].values, np.ones(int(repeat.sum())), 0.0)

    os.makedirs(a.out, exist_ok=True)
    summary.index.name = "customer"
    summary.reset_index()[["customer", "frequency", "recency", "T", "monetary_value"]].to_csv(
        f"{a.out}/summary.csv", index=False, float_format="%.17g")
    pd.DataFrame({
        "customer": summary.index, "p_alive": p_alive, "expected_purchases": expected,
        "p_any_purchase": p_any, "expected_avg_profit": profit, "clv": clv,
    }).to_csv(f"{a.out}/predictions.csv", index=False, float_format="%.17g")

    print(json.dumps({
        "engine": "lifetimes", "version": lifetimes.__version__,
        "params": {"r": rr, "alpha": alpha, "a": aa, "b": bb},
        "gg_params": {"p": gp, "q": gq, "v": gv},
        "loglik": loglik,
        "nll_mean_scaled": float(bgf._negative_log_likelihood_),
        "gg_loglik": -float(gg_nll_mean) * int(repeat.sum()),
        "horizon_periods": t, "clv_freq": unit,
        "load_ms": load_ms, "summary_ms": summary_ms,
        "fit_ms": bg_fit_ms + gg_fit_ms, "bgnbd_fit_ms": bg_fit_ms, "gg_fit_ms": gg_fit_ms,
        "predict_ms": predict_ms,
        "customers": int(len(f)), "repeat_customers": int(repeat.sum()),
    }), flush=True)


if __name__ == "__main__":
    main()
