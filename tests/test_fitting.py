"""Fitting: the paper's numbers, robust fits, synthetic recovery and diagnostics."""

from __future__ import annotations

from itertools import product

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from morph import FitError, fit, load_runs, preset
from morph.errors import DataError
from morph.laws import ChinchillaLaw, InferenceEfficientLaw, UShapedLaw
from morph.metrics import evaluate, relative_error
from morph.robust import LogSpaceModel


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return load_runs()


# The paper's numbers and each one's tolerance live in data/paper_numbers.csv
# (morph.reproduce explains the tolerances); tests/test_reproduce.py checks
# every one. Here: what the numbers alone do not show.


def test_fit_b_ties_its_exponents_and_converges_cleanly(runs):
    result = fit(runs, fit_set="in_fit_B")
    assert result.params["beta"] == result.params["gamma"] == result.params["alpha"]
    assert result.n_fit == 27 and result.success and result.warnings == []


def test_one_billion_runs_are_the_four_trained_candidates(runs):
    big = (runs["size_label"] == "1B").to_numpy()
    assert list(runs.loc[big, "variant"]) == ["1B_v1", "1B_v3", "1B_v6", "1B_v8"]
    assert list(runs.loc[big, "n_layers"]) == [24, 16, 12, 12]
    assert list(runs.loc[big, "d_model"]) == [2048, 2560, 2816, 3072]
    # Chinchilla sees only N and D: at one D its ranking follows N alone, hence its
    # rank correlation of -0.4 (the paper's) while the shape-aware law ranks them right.
    ch = fit(runs, "chinchilla", fit_set="in_fit_B")
    order_by_prediction = np.argsort(ch.predictions[big])
    order_by_size = np.argsort(-runs.loc[big, "N"].to_numpy())
    assert order_by_prediction.tolist() == order_by_size.tolist()


def test_fit_a_is_flagged_as_unidentifiable(runs):
    result = fit(runs, fit_set="in_fit_A")
    assert result.params["A"] < 0
    text = " ".join(result.warnings)
    assert "tokens per parameter" in text and "A = " in text and "negative" in text
    assert "[[Warnings]]" in result.report()


def test_metrics_separate_fit_and_heldout_points(runs):
    result = fit(runs, fit_set="in_fit_B")
    split = result.metrics()
    assert (split["all"].n, split["fit"].n, split["heldout"].n) == (76, 27, 49)
    assert split["fit"].mse < split["all"].mse < split["heldout"].mse
    whole = fit(runs.loc[runs["in_fit_B"] == 1], fit_set=None)
    assert whole.metrics()["heldout"] is None
    raw = result.metrics(round_decimals=None)["all"]
    assert raw.mse != split["all"].mse and raw.mse == pytest.approx(split["all"].mse, rel=1e-2)


def test_report_and_dict_are_complete(runs):
    result = fit(runs, fit_set="in_fit_B")
    report = result.report()
    for text in ("[[Parameters]]", "alpha", "tied to alpha", "all points (paper test)", "held-out points", "0.998237"):
        assert text in report
    d = result.to_dict()
    assert d["metrics"]["mse"] == result.metrics()["all"].mse
    assert len(d["predictions"]) == 76 and d["warnings"] == []
    assert set(d["stderr"]) == set(result.free_parameters)
    assert "<pre>" in result._repr_html_()


def test_evaluate_on_another_table(runs):
    result = fit(runs, fit_set="in_fit_B")
    big = runs[runs["size_label"] == "1B"]
    m = result.evaluate(big)
    assert m.n == 4 and m.spearman == pytest.approx(1.0)
    # Evaluating the 1B rows alone gives what the full table gives for them.
    rows = (runs["size_label"] == "1B").to_numpy()
    rounded = np.round(result.predictions[rows], 4)  # evaluate() rounds as the paper does
    assert m.max_relative_error == pytest.approx(relative_error(runs.loc[rows, "loss"], rounded).max(), rel=1e-12)


# -- robust method ------------------------------------------------------------------


def _synthetic(law, n=120, noise=0.005, seed=3, shape_aware=True):
    rng = np.random.default_rng(seed)
    N = 10 ** rng.uniform(7, 10, n)
    D = N * 10 ** rng.uniform(0.5, 3, n)
    R = 10 ** rng.uniform(1, 2.6, n)
    loss = law.predict(N, D, R if shape_aware else None) * np.exp(rng.normal(0, noise, n))
    frame = pd.DataFrame({"N": N, "D": D, "loss": loss})
    if shape_aware:
        frame["aspect_ratio"] = R
    return frame


@pytest.mark.parametrize(
    "law, family, variant",
    [
        (preset("besiroglu2024"), "chinchilla", "untied"),
        (InferenceEfficientLaw(A=400, B=2000, E=1.8, alpha=0.35, beta=0.35, eps=0.01, gamma=0.35), "inference-efficient", "tied"),
        (UShapedLaw(A=400, B=2000, E=1.8, alpha=0.35, beta=0.35, eps=0.05, r_opt=60.0), "u-shaped", "tied"),
    ],
)
def test_robust_fit_recovers_known_parameters(law, family, variant):
    data = _synthetic(law, shape_aware=family != "chinchilla")
    result = fit(data, family, variant, method="robust")
    assert result.success
    for name in ("E", "alpha", "beta"):
        assert result.params[name] == pytest.approx(law.params[name], rel=0.05), name
    assert result.metrics(round_decimals=None)["all"].r2 > 0.99


def test_robust_fit_tolerates_outliers_better_than_least_squares():
    law = preset("besiroglu2024")
    data = _synthetic(law, n=150, noise=0.003, shape_aware=False)
    data.loc[:9, "loss"] *= 1.25  # ten corrupted runs
    robust = fit(data, "chinchilla", "untied", method="robust")
    clean = ~data.index.isin(range(10))
    err = relative_error(law.predict(data.N[clean], data.D[clean]), robust.predictions[clean])
    assert err.max() < 0.01


def test_robust_fit_reaches_the_multistart_lbfgs_optimum():
    """Same optimum as L-BFGS from the replication's grid (a subsample, to stay fast)."""
    data = _synthetic(preset("besiroglu2024"), n=80, noise=0.01, shape_aware=False, seed=11)
    data.loc[:3, "loss"] *= 1.2
    result = fit(data, "chinchilla", "untied", method="robust")
    model = LogSpaceModel("chinchilla", "untied", data.N, data.D, None, data.loss)
    grid = list(product(np.arange(0, 30, 5), np.arange(0, 30, 5), np.arange(-1, 1.5, 0.5),
                        np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5)))
    assert len(grid) == 4500
    best = np.inf
    for start in grid[::45]:  # 100 of the 4,500 starts, spread over the grid
        res = minimize(lambda t: model.objective_and_gradient(t, None, 1e-3), np.array(start, float),
                       jac=True, method="L-BFGS-B")
        best = min(best, res.fun)
    assert result.objective <= best * (1 + 1e-9)


def test_robust_fit_needs_no_aspect_ratio_for_chinchilla():
    data = _synthetic(preset("besiroglu2024"), n=40, shape_aware=False)
    assert "aspect_ratio" not in data
    fit(data, "chinchilla", "tied", method="robust")
    with pytest.raises(DataError, match="aspect_ratio"):
        fit(data, "inference-efficient", "tied", method="robust")


def test_robust_fit_on_paper_data_keeps_parameters_positive(runs):
    result = fit(runs, "inference-efficient", "untied", method="robust", fit_set="in_fit_B")
    assert all(result.params[p] > 0 for p in ("A", "B", "E", "eps"))
    assert result.metrics()["all"].r2 > 0.99


def test_bootstrap_intervals_cover_the_truth_and_are_reproducible():
    law = ChinchillaLaw(A=400, B=2000, E=1.8, alpha=0.35, beta=0.35)
    data = _synthetic(law, n=60, noise=0.01, shape_aware=False, seed=5)
    a = fit(data, "chinchilla", "tied", method="robust", bootstrap=200, seed=1)
    b = fit(data, "chinchilla", "tied", method="robust", bootstrap=200, seed=1)
    assert a.conf_int == b.conf_int
    assert a.bootstrap_params.shape == (200, 5)
    for name in ("E", "alpha"):
        low, high = a.conf_int[name]
        assert low < law.params[name] < high
        assert low < a.params[name] < high
    low, high = a.predict_interval(1e9, 2e10)
    assert low < float(a.predict(1e9, 2e10)) < high


def test_paper_bootstrap_and_covariance_band(runs):
    result = fit(runs, fit_set="in_fit_B", bootstrap=30, seed=0)
    assert result.bootstrap_params.shape[1] == 7
    assert result.conf_int["alpha"][0] < result.params["alpha"] < result.conf_int["alpha"][1]
    plain = fit(runs, fit_set="in_fit_B")
    low, high = plain.predict_interval(1.67e9, 2.9e10, 256.0)
    assert low < float(plain.predict(1.67e9, 2.9e10, 256.0)) < high


# -- diagnostics and errors ---------------------------------------------------------


def test_too_few_points_is_a_clear_error(runs):
    with pytest.raises(FitError, match="4 fit points cannot determine the 5 free parameters"):
        fit(runs.head(4), fit_set=None)


def test_design_warnings_for_degenerate_data():
    law = preset("besiroglu2024")
    N = np.geomspace(1e8, 1e10, 12)
    same_n = pd.DataFrame({"N": 1e9, "D": np.geomspace(1e9, 1e12, 12)})
    same_n["loss"] = law.predict(same_n.N, same_n.D)
    res = fit(same_n, "chinchilla", "tied", method="robust")
    assert any("same N" in w for w in res.warnings)
    constant_ratio = pd.DataFrame({"N": N, "D": 20 * N, "loss": law.predict(N, 20 * N)})
    res = fit(constant_ratio, "chinchilla", "untied", method="robust")
    assert any("tokens per parameter" in w for w in res.warnings)


def test_a_fit_to_pure_noise_returns_with_warnings_that_say_so():
    # Pure noise with no trend (seeded): curve_fit from p0 = ones converges to a law that explains little and is
    # not physical; the fit says both instead of raising.
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"N": 10 ** rng.uniform(7, 9, 10), "D": 10 ** rng.uniform(9, 11, 10),
                         "loss": rng.uniform(2, 4, 10)})
    res = fit(data, "chinchilla", "untied", method="paper")
    assert any("explains only" in w and "robust" in w for w in res.warnings)
    assert any("not positive" in w or "negative" in w for w in res.warnings)


def test_unknown_method_and_bad_options(runs):
    with pytest.raises(FitError, match="unknown fit method"):
        fit(runs, method="magic")  # type: ignore[arg-type]
    with pytest.raises(FitError):
        fit(runs, bootstrap=-1)


def test_metric_helpers_by_hand():
    m = evaluate([2.0, 3.0, 4.0], [2.1, 2.9, 4.2])
    assert m.mse == pytest.approx((0.01 + 0.01 + 0.04) / 3)
    assert m.r2 == pytest.approx(1 - 0.06 / 2.0)
    assert m.max_relative_error == pytest.approx(0.05)
    assert m.spearman == pytest.approx(1.0)
    assert np.isnan(evaluate([1.0], [1.0]).r2)


def test_poor_optima_are_named_and_point_to_the_robust_method(runs):
    # Seven free parameters from p0 = ones: curve_fit ends far from the data.
    result = fit(runs, "inference-efficient", "untied", method="paper", fit_set="in_fit_B")
    assert any("explains only" in w and "robust method" in w for w in result.warnings)
    robust = fit(runs, "inference-efficient", "untied", method="robust", fit_set="in_fit_B")
    assert not any("explains only" in w for w in robust.warnings)


def test_u_shaped_law_finds_an_optimal_aspect_ratio_inside_the_data(runs):
    result = fit(runs, "u-shaped", "tied", method="paper", fit_set="in_fit_B")
    assert result.success and result.warnings == []
    assert 20 < result.params["r_opt"] < 64  # the U's bottom, below R of about 64
    assert result.metrics()["all"].r2 > 0.998


def test_a_curve_fit_run_that_stops_short_is_rerun_from_where_it_stopped(runs):
    """The paper method's rerun: taken when it fits clearly better, ignored at an optimum."""
    from scipy.optimize import curve_fit

    from morph.fitting import _restart_if_stopped_early, _sum_of_squares

    rows = runs[runs["in_fit_A"] == 1]
    N, D, loss = (rows[c].to_numpy(float) for c in ("N", "D", "loss"))

    def model(_x, A, B, E, alpha):
        # The optimiser tries wild values on its way, as in the paper method (which silences them too).
        with np.errstate(all="ignore"):
            return ChinchillaLaw(A=A, B=B, E=E, alpha=alpha, beta=alpha).predict(N, D)

    kwargs = {"p0": [1.0] * 4, "maxfev": 100000}
    optimum, cov, _, message, flag = curve_fit(model, np.zeros_like(loss), loss, full_output=True, **kwargs)
    kept = _restart_if_stopped_early(model, loss, kwargs, optimum, cov, message, flag)
    assert kept[0] is optimum and kept[2] == message  # nothing gained: the first answer stands
    # A point short of the optimum, as MINPACK's step-size test can leave it in a flat valley.
    short = optimum * np.array([1.0, 1.0, 1.0, 1.02])
    assert _sum_of_squares(model, short, loss) > 1.01 * _sum_of_squares(model, optimum, loss)
    rerun = _restart_if_stopped_early(model, loss, kwargs, short, None, "stopped", 2)
    assert _sum_of_squares(model, rerun[0], loss) == pytest.approx(_sum_of_squares(model, optimum, loss), rel=1e-6)
