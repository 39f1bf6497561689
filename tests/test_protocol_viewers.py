"""The load benchmark's protocol viewers against a real ``morph serve`` on loopback: state, and a move's figure update."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, free_port, run_async, stop, wait_for_http

sys.path.insert(0, str(ROOT / "benchmarks"))
from _viewers import ProtocolViewer, decode_frame, encode_frame, kernel_memory_mb, tree_cpu_s  # noqa: E402


def test_frames_round_trip_and_malformed_ones_are_refused():
    frame = encode_frame("iopub", {"msg_type": "status"}, {}, {}, {"execution_state": "idle"}, [b"\x00\x01"])
    assert decode_frame(frame) == ("iopub", {"msg_type": "status"}, {}, {}, {"execution_state": "idle"}, [b"\x00\x01"])
    for bad in (b"\xff" * 8, b"\x01", "text", frame[:20], frame[:60]):
        with pytest.raises(ValueError):
            decode_frame(bad)
    with pytest.raises(ValueError):
        ProtocolViewer("http://example.org:8866/")  # loopback only


@pytest.mark.slow
def test_two_protocol_viewers_get_every_widget_and_their_moves_redraw_the_budget_line(tmp_path):
    port = free_port()
    morph = Path(sys.executable).with_name("morph")
    process = subprocess.Popen([str(morph), "serve", "--port", str(port), "--pool-size", "0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(base + "voila/static/voila.js", timeout=90, process=process)
        viewers = [ProtocolViewer(base, query="latency=2", moves=2, pause_s=0.1) for _ in range(2)]

        async def both():
            return await asyncio.gather(*(v.run() for v in viewers))

        results = run_async(asyncio.wait_for(both(), 300))
        assert len(kernel_memory_mb(process.pid)) == 2  # one kernel per viewer, as for pages
        assert tree_cpu_s(process.pid) > 0
    finally:
        stop(process)
    for viewer, result in zip(viewers, results):
        assert result.error is None and result.state_s is not None
        assert result.models == len(viewer.states) > 10  # every model listed by comm_info has its state
        assert result.moves_sent == result.answered == 2
        for value, update in viewer.updates:
            layout = update["_py2js_update"]["layout_data"]
            # The budget line (the figure's first shape) follows the slider.
            assert layout["shapes.0.x0"] == layout["shapes.0.x1"] == pytest.approx(value)
    # Each viewer moved its own dashboard: down one step of the slider, then back to the link's budget.
    step = next(s["step"] for s in viewers[0].states.values() if s.get("description") == "Latency budget (s)")
    assert [v for v, _ in viewers[0].updates] == [pytest.approx(2.0 - step), pytest.approx(2.0)]


def test_a_process_memory_is_read_as_resident_and_proportional():
    import os

    from _viewers import memory_mb

    mine = memory_mb(os.getpid())
    # PSS shares each shared page among the processes mapping it, so it is never above RSS;
    # this interpreter holds numpy and pytest, more than a megabyte either way.
    assert 1.0 < mine["pss"] <= mine["rss"]


def test_a_process_trees_memory_counts_every_member_once():
    import os

    from _viewers import memory_mb, process_tree, tree_pss_mb

    # This process alone below pytest's own: the tree's PSS is at least this process's.
    assert tree_pss_mb(os.getpid()) >= memory_mb(os.getpid())["pss"] > 0
    assert os.getpid() in process_tree(os.getpid())
