"""Kernels forked from the server's template process: what a launched kernel does, they do."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

from conftest import run_async
from morph.app import kernel_fork
from morph.app.kernel_fork import ForkedProcess, Forker, forked_kernel_arguments, kernel_arguments

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="forking kernels is Linux-only (/proc)")


def test_only_the_plain_ipykernel_command_of_this_interpreter_is_forked():
    assert kernel_arguments([sys.executable, "-m", "ipykernel_launcher", "-f", "k.json"]) == ["-f", "k.json"]
    assert kernel_arguments([sys.executable, "-m", "ipykernel_launcher"]) == []
    assert kernel_arguments([sys.executable, "-m", "other_kernel", "-f", "k.json"]) is None
    assert kernel_arguments(["/bin/sh", "-m", "ipykernel_launcher", "-f", "k.json"]) is None  # another program
    assert kernel_arguments(["no-such-python-here", "-m", "ipykernel_launcher"]) is None
    assert kernel_arguments([sys.executable]) is None


@pytest.fixture(scope="module")
def forker():
    made = Forker()
    made.start()
    yield made
    made.stop()


@pytest.fixture
def forking(forker, monkeypatch):
    # Undone after the test: other tests' kernels are launched as usual.
    monkeypatch.setattr(LocalProvisioner, "launch_kernel", LocalProvisioner.launch_kernel)
    kernel_fork.install(forker)
    return forker


async def run(client, code: str) -> str:
    """What ``code`` prints in the kernel (its stdout), or its error's name."""
    msg_id = client.execute(code)
    out = []
    while True:
        message = await client.get_iopub_msg(timeout=60)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind = message["msg_type"]
        if kind == "stream":
            out.append(message["content"]["text"])
        elif kind == "error":
            return message["content"]["ename"]
        elif kind == "status" and message["content"]["execution_state"] == "idle":
            return "".join(out)


@pytest.mark.slow
def test_a_forked_kernel_runs_with_its_own_environment_group_and_widgets_and_is_interrupted_and_stopped(
        forking, tmp_path):
    folder = tmp_path  # the kernels' working folder

    async def scenario() -> dict:
        managers = [AsyncKernelManager(kernel_name="python3") for _ in range(2)]
        seen = {}
        for k, manager in enumerate(managers):
            await manager.start_kernel(env={**os.environ, "MORPH_TEST_KERNEL": str(k)}, cwd=str(folder))
        clients = [m.client() for m in managers]
        try:
            for client in clients:
                client.start_channels()
                await client.wait_for_ready(timeout=60)
            processes = [m.provisioner.process for m in managers]
            seen["processes"] = processes
            seen["registered"] = [forked_kernel_arguments(p.pid) for p in processes]
            seen["connection_files"] = [m.connection_file for m in managers]
            code = ("import os, sys, random, ipywidgets; "
                    "print(os.environ['MORPH_TEST_KERNEL'], os.getpid(), os.getpgid(0), os.getppid(), "
                    "random.random(), 'jupyter.widget.control' in get_ipython().kernel.comm_manager.targets, "
                    "os.getcwd() == sys.path[0])")
            seen["printed"] = [(await run(c, code)).split() for c in clients]
            # An interrupt reaches a busy kernel as it reaches a launched one (its process group).
            busy = clients[0].execute("import time; time.sleep(30)")
            await asyncio.sleep(1.0)
            await managers[0].interrupt_kernel()
            while True:
                message = await clients[0].get_iopub_msg(timeout=20)
                if message["parent_header"].get("msg_id") == busy and message["msg_type"] == "error":
                    seen["interrupted"] = message["content"]["ename"]
                    break
        finally:
            for client in clients:
                client.stop_channels()
            for manager in managers:
                await manager.shutdown_kernel(now=True)
        seen["after"] = [p.poll() for p in seen["processes"]]
        return seen

    seen = run_async(scenario(), timeout=240)
    template = forking.process.pid
    for k, (printed, process) in enumerate(zip(seen["printed"], seen["processes"])):
        assert isinstance(process, ForkedProcess)
        env, pid, group, parent, _, widgets, importable = printed
        assert env == str(k) and int(pid) == process.pid
        assert int(group) == process.pid  # leads its own process group, as a launched kernel does
        assert int(parent) == template  # a fork of the template, not a new interpreter
        assert widgets == "True"  # ipywidgets' comm targets, although the template imported ipywidgets
        assert importable == "True"  # the kernel's folder first on sys.path, as with `python -m` started there
    assert seen["printed"][0][4] != seen["printed"][1][4]  # each kernel draws its own random numbers
    # Its ipykernel arguments are found from its pid, although its command line is the template's.
    assert seen["registered"] == [["-f", m] for m in seen["connection_files"]]
    assert seen["interrupted"] == "KeyboardInterrupt"
    assert seen["after"] == [0, 0]  # shut down, and seen to be


@pytest.mark.slow
def test_without_a_template_kernels_start_as_their_own_interpreter(monkeypatch):
    monkeypatch.setattr(LocalProvisioner, "launch_kernel", LocalProvisioner.launch_kernel)
    never_started = Forker(ready_timeout_s=1.0)
    kernel_fork.install(never_started)

    async def scenario() -> type:
        manager = AsyncKernelManager(kernel_name="python3")
        await manager.start_kernel()
        try:
            return type(manager.provisioner.process)
        finally:
            await manager.shutdown_kernel(now=True)

    assert run_async(scenario(), timeout=120).__name__ == "Popen"


def test_a_gone_process_polls_as_exited_and_takes_no_signal():
    process = ForkedProcess(os.getpid())
    assert process.poll() is None and process.started is not None
    gone = ForkedProcess(os.getpid())
    gone.started = -1  # another process that once had this pid: not ours to signal
    assert gone.poll() == 0 and gone.wait(timeout=1) == 0
    gone.send_signal(signal.SIGTERM)  # nothing happens: this test process is still here


def test_stopping_the_template_removes_its_socket_and_folder():
    made = Forker()
    made.start()
    folder = Path(made.socket_path).parent
    deadline = time.monotonic() + 60
    while not Path(made.socket_path).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Path(made.socket_path).exists() and oct(folder.stat().st_mode & 0o777) == "0o700"
    template = made.process
    made.stop()
    assert template.poll() is not None and not folder.exists()
    assert made.fork(["-f", "k.json"], {}, None) is None  # stopped: callers launch as usual
