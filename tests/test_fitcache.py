"""Stored fits: equal to the fit they came from, refitted when damaged, and what keeps scipy out of a page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import morph.fitcache as fitcache
from morph.fitcache import cache_dir, cached_fit
from morph.fitting import fit


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MORPH_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def stored_files(cache: Path) -> list[Path]:
    return sorted((cache / "fits").glob("*.json"))


def assert_same_fit(a, b) -> None:
    # Exact equality: the stored floats are Python's round-tripping repr of the computed ones.
    assert a.params == b.params and a.stderr == b.stderr and a.conf_int == b.conf_int
    assert np.array_equal(a.bootstrap_params, b.bootstrap_params)
    assert np.array_equal(a.covariance, b.covariance)
    assert a.objective == b.objective and a.success == b.success and a.message == b.message
    assert a.warnings == b.warnings and a.free_parameters == b.free_parameters
    assert np.array_equal(a.fit_mask, b.fit_mask) and a.data.equals(b.data)
    assert (a.family, a.variant, a.method, a.fit_set) == (b.family, b.variant, b.method, b.fit_set)


def test_a_stored_fit_equals_the_fit_it_came_from(cache, monkeypatch):
    first = cached_fit(fit_set="in_fit_B", bootstrap=12)
    assert len(stored_files(cache)) == 1
    monkeypatch.setattr(fitcache, "fit", lambda **_: pytest.fail("a stored fit was computed again"))
    again = cached_fit(fit_set="in_fit_B", bootstrap=12)
    assert_same_fit(again, first)
    assert_same_fit(again, fit(fit_set="in_fit_B", bootstrap=12))
    assert again.report() == first.report()
    assert np.array_equal(again.predict_frame(again.data), first.predict_frame(first.data))


def test_other_options_are_other_fits(cache):
    cached_fit(fit_set="in_fit_B", bootstrap=5)
    cached_fit(fit_set="in_fit_B", bootstrap=5, seed=1)
    cached_fit("chinchilla", fit_set="in_fit_B")
    assert len(stored_files(cache)) == 3


@pytest.mark.parametrize("damage", [
    lambda text: text[: len(text) // 2],                                        # cut short
    lambda text: "not json",
    lambda text: json.dumps({**json.loads(text), "key": {"format": 0}}),      # another key
    lambda text: json.dumps({"key": json.loads(text)["key"], "fit": {"params": {}}}),  # fields missing
])
def test_a_damaged_or_foreign_file_is_fitted_again_and_rewritten(cache, damage):
    expected = cached_fit(fit_set="in_fit_B", bootstrap=4)
    [path] = stored_files(cache)
    path.write_text(damage(path.read_text()))
    assert_same_fit(cached_fit(fit_set="in_fit_B", bootstrap=4), expected)
    assert json.loads(path.read_text())["key"]["bootstrap"] == 4


def test_a_folder_that_cannot_be_written_only_costs_the_fit(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MORPH_CACHE_HOME", str(blocker))
    assert_same_fit(cached_fit(fit_set="in_fit_B"), fit(fit_set="in_fit_B"))


def test_the_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MORPH_CACHE_HOME", str(tmp_path / "here"))
    assert cache_dir() == tmp_path / "here"
    monkeypatch.delenv("MORPH_CACHE_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "morph"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # ignored, as the XDG specification says
    assert cache_dir() == Path.home() / ".cache" / "morph"


def test_a_dashboard_with_prepared_fits_never_loads_scipy(cache):
    from morph.decision import prepare_preset_fits

    prepare_preset_fits()
    # scipy.optimize and scipy.special are about 50 MB of every kernel that imports them.
    code = (
        "import sys\n"
        "from morph.app.dashboard import Dashboard\n"
        "for query in ('', 'law=fit-b', 'law=bian2025-nonequal', 'hardware=h100-sxm&latency=1'):\n"
        "    Dashboard.from_query(query)\n"
        "print(sorted(m for m in sys.modules if m == 'scipy' or m.startswith('scipy.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
