"""Each law's fitting form: the analytic Jacobian against finite differences, and its other pieces."""

from __future__ import annotations

import numpy as np
import pytest

from morph.laws import LAW_FAMILIES, preset
from morph.robust import LogSpaceModel

# Points spread over the paper's range: 1e8-2e9 parameters, 1e9-1e11 tokens, R from 8 to 1000.
_RNG = np.random.default_rng(7)
N = np.exp(_RNG.uniform(np.log(1e8), np.log(2e9), 40))
D = np.exp(_RNG.uniform(np.log(1e9), np.log(1e11), 40))
R = np.exp(_RNG.uniform(np.log(8.0), np.log(1000.0), 40))

VARIANTS = [(family, variant) for family, cls in LAW_FAMILIES.items() for variant in cls.variants]

# A physical point for each family, near the published fits (fitting coordinates are built from it).
_POINTS = {
    "chinchilla": dict(A=7720.7, B=68574.0, E=2.13, alpha=0.49, beta=0.52),
    "inference-efficient": dict(preset("bian2025").params, beta=0.66, gamma=0.7),
    "u-shaped": dict(A=5.5e4, B=7.8e5, E=2.45, alpha=0.61, beta=0.63, eps=0.02, r_opt=90.0),
}


def _model(family: str, variant: str) -> LogSpaceModel:
    loss = np.full(N.shape, 3.0)  # the Jacobian does not depend on the observed loss
    return LogSpaceModel(family, variant, N, D, R if LAW_FAMILIES[family].needs_aspect_ratio else None, loss)


@pytest.mark.parametrize(("family", "variant"), VARIANTS)
def test_analytic_jacobian_matches_central_differences(family, variant):
    model = _model(family, variant)
    theta = model.to_internal(_POINTS[family])
    _, jacobian = model.forward(theta[None, :])
    # Central differences with step 1e-6 in coordinates of order 1-10: truncation error
    # ~1e-12 * third derivative, rounding ~1e-16 / 1e-6 = 1e-10, so 1e-7 absolute leaves
    # a factor of 1000 to spare while a wrong term (order 0.01-1) cannot pass.
    step = 1e-6
    for k, name in enumerate(model.free):
        shift = np.zeros_like(theta)
        shift[k] = step
        up, _ = model.forward((theta + shift)[None, :], with_jacobian=False)
        down, _ = model.forward((theta - shift)[None, :], with_jacobian=False)
        numeric = (up[0] - down[0]) / (2 * step)
        np.testing.assert_allclose(jacobian[0, :, k], numeric, atol=1e-7, err_msg=f"{family}/{variant}: {name}")


@pytest.mark.parametrize(("family", "variant"), VARIANTS)
def test_log_space_form_predicts_the_laws_loss(family, variant):
    # The fitters' log-space form and the law's own predict() are the same function.
    model = _model(family, variant)
    params = {name: _POINTS[family][name] for name in model.free}
    theta = model.to_internal(params)
    law = LAW_FAMILIES[family].from_values(model.to_params(theta))
    log_pred, _ = model.forward(theta[None, :], with_jacobian=False)
    # Both in float64 from the same parameters: agreement to 1e-12 relative (rounding of exp/log).
    np.testing.assert_allclose(np.exp(log_pred[0]), law.predict(N, D, R), rtol=1e-12)


@pytest.mark.parametrize("family", list(LAW_FAMILIES))
def test_every_parameter_has_a_kind_a_slider_and_a_paper_start(family):
    cls = LAW_FAMILIES[family]
    assert set(cls.kinds) == set(cls.parameter_names())
    for name, value in _POINTS[family].items():
        slider = cls.slider(name, value)
        shown = (slider.base**slider.low, slider.base**slider.high) if slider.kind == "log" else (slider.low, slider.high)
        assert shown[0] <= value <= shown[1], name
    for variant in cls.variants:
        p0, _ = cls.paper_start(variant)
        assert len(p0) == len(cls.free_parameters(variant))


def test_start_grid_covers_the_published_exponents():
    # The published tied fit has alpha = beta = gamma = 0.6146: inside every exponent axis.
    axes = LAW_FAMILIES["inference-efficient"].start_axes(("A", "B", "E", "alpha", "eps"))
    assert list(axes) == ["alpha", "eps"]
    assert axes["alpha"].min() < 0.6146 < axes["alpha"].max()
    assert np.exp(axes["eps"]).min() < 0.0011462 < np.exp(axes["eps"]).max()
