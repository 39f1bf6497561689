"""The speculative decoding explorer and figures: thin, consistent with the model, and safe on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from morph.errors import MorphError
from morph.shapes import parameter_count
from morph.speculative import speculative_timing
from morph.app.speculative import (
    SpeculativeExplorer,
    draft_curves,
    equal_size_deep_draft,
    speedup_figure,
    step_time_figure,
)


@pytest.mark.parametrize(("layers", "width"), [(4, 2048), (2, 4096), (8, 1536)])
def test_equal_size_deep_draft_has_about_as_many_parameters(layers, width):
    deep_layers, deep_width = equal_size_deep_draft(layers, width)
    assert deep_width == width // 2 and deep_layers > 2 * layers
    # One layer of the narrow shape is the granularity: within 3% of the original's parameters.
    assert float(parameter_count(deep_layers, deep_width)) == pytest.approx(float(parameter_count(layers, width)),
                                                                            rel=0.03)


def test_curves_and_figures_agree_with_the_model():
    curves = draft_curves("32x4096", [(4, 2048), (24, 1024)], 0.75, max_lookahead=8)
    timing = speculative_timing("32x4096", [4, 24], [2048, 1024], 0.75, np.arange(9)[:, None])
    np.testing.assert_allclose(curves[0].speedup, timing.speedup[:, 0], rtol=1e-12)
    figure = speedup_figure(curves, lookahead=4)
    assert len(figure.data) == 2 and len(figure.layout.shapes) == 2
    np.testing.assert_allclose(figure.data[1].y, timing.speedup[:, 1], rtol=1e-12)
    bars = step_time_figure("32x4096", [(4, 2048), (24, 1024)], 0.75, 4)
    drafting, verifying = bars.data
    assert list(drafting.y) == ["4x2048", "24x1024", "target alone"]
    np.testing.assert_allclose(drafting.x[:2], 1e3 * 4 * timing.draft_step_s[0], rtol=1e-12)
    assert drafting.x[2] == 0.0


def test_explorer_shows_the_deep_narrow_draft_losing_and_follows_the_sliders():
    explorer = SpeculativeExplorer("a100-40gb", target=(32, 4096), draft=(4, 2048), acceptance=0.75, lookahead=4)
    assert "4x2048" in explorer.readout.value and "24x1024" in explorer.readout.value
    wide, deep = (np.asarray(trace.y) for trace in explorer.speedup.data)
    assert wide.max() > 1.5 and deep.max() == 1.0  # the deep one only breaks even, at k = 0
    explorer.draft_layers.value = 2
    assert "2x2048" in explorer.readout.value and explorer.message.value == ""
    explorer.acceptance.value = 1.0
    explorer.lookahead.value = 0
    assert "yields 1.00 tokens" in explorer.readout.value


def test_explorer_refuses_unknown_hardware():
    with pytest.raises(MorphError, match="unknown hardware"):
        SpeculativeExplorer("abacus")


def test_explorer_shows_errors_as_escaped_text(monkeypatch):
    explorer = SpeculativeExplorer()

    def broken() -> None:
        raise MorphError("<b>bad</b> input")

    monkeypatch.setattr(explorer, "_draw", broken)
    explorer.refresh()
    assert "&lt;b&gt;bad&lt;/b&gt; input" in explorer.message.value and "<b>bad" not in explorer.message.value
