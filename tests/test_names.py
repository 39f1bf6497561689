"""One name per concept: the latency budget is latency_budget_s, --latency-budget and ?latency=; former names still work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from morph.errors import SelectionError

from morph import load_candidates
from morph.cli import main
from morph.frontier import candidates_from_table, evaluate_candidates, select

CANDIDATES_CSV = str(Path(__file__).resolve().parents[1] / "data" / "morph_1b_candidates.csv")


@pytest.fixture(scope="module")
def one_b():
    return evaluate_candidates(candidates_from_table(load_candidates()), "bian2025")


def test_former_keyword_gives_the_same_selection(one_b):
    new = select(one_b, latency_budget_s=2.0, top_k=3)
    old = select(one_b, latency_target=2.0, top_k=3)
    assert new.selected["label"].tolist() == old.selected["label"].tolist()
    # The paper's choice under a 2 s budget on the A100: Morph-1B (12 x 3072, 1.96 s) first.
    assert new.selected["label"].iloc[0] == "1B_v8"
    assert old.latency_target == old.latency_budget_s == 2.0


def test_budget_given_twice_is_refused(one_b):
    with pytest.raises(SelectionError, match="once"):
        select(one_b, 2.0, latency_target=3.0)


def test_former_cli_option_still_works(capsys):
    outputs = []
    for option in ("--latency-budget", "--latency-target"):
        assert main(["frontier", "--candidates", CANDIDATES_CSV, option, "2", "--json"]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1]
    assert outputs[0]["latency_budget_s"] == 2.0
    assert outputs[0]["selected"][0]["label"] == "1B_v8"


def test_link_key_is_latency():
    from morph.app.settings import DashboardSettings, settings_from_query

    settings, notes = settings_from_query("latency=3")
    assert settings == DashboardSettings(latency_budget_s=3.0) and notes == []
    assert settings.to_query() == "latency=3"
