"""Class mode of ``morph serve --class N``: N dashboard kernels warmed up before the lesson, refilled only when quiet.

Voila's pool of preheated kernels (``--preheat_kernel``) refills itself one
second after every page takes a kernel. When a class opens the link at once,
every refill starts a kernel (about 2 CPU seconds) that competes with the
pages still being served: a pool as large as the class made a burst of 30
pages slower than no pool at all. In class mode the server process installs
:func:`install` before Voila starts, and its kernel manager then:

- **warms the class up before the lesson**: N kernels start, each imports
  Morph and builds a dashboard, then waits for its page's request (so a
  link's settings still apply, :mod:`morph.app.kernel`). At most ``cores + 1``
  warm up at a time, so that starting 30 does not thrash a small machine; the
  server logs when all N are warm, and how long it took.
- **refills only when no page is waiting**: a kernel taken by a page is
  replaced once no page request has been in flight for ``quiet_s`` seconds,
  one kernel at a time, and at a lower CPU priority (``nice``) so that a page
  arriving during a refill still comes first. The pool refills up to N, but
  never beyond the session limit: pages and ready kernels together stay
  within ``max_sessions`` (at least N), the memory ``morph serve`` sized.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

__all__ = ["ClassPool", "install", "REFILL_NICE", "QUIET_S"]

log = logging.getLogger("morph.app.class_pool")

QUIET_S = 10.0
"""Seconds without a page request in flight before a taken kernel is replaced."""

REFILL_NICE = 10
"""CPU niceness of a kernel started as a refill (0 is normal priority; 19 the lowest)."""


class ClassPool:
    """What the class's kernel manager shares with the page handler: pages in flight and kernels warm."""

    def __init__(self, size: int, max_sessions: int | None = None, quiet_s: float = QUIET_S,
                 concurrency: int | None = None) -> None:
        if size < 1:
            raise ValueError("a class has at least one viewer")
        self.size = size
        self.max_sessions = max_sessions
        self.quiet_s = quiet_s
        self.concurrency = concurrency or (os.cpu_count() or 1) + 1
        self.pages_in_flight = 0
        self.last_page = float("-inf")
        self.warm: set[str] = set()
        self.started = time.monotonic()
        self.ready_logged = False

    def quiet(self, now: float | None = None) -> bool:
        """No page request in flight, and none for ``quiet_s`` seconds."""
        now = time.monotonic() if now is None else now
        return self.pages_in_flight == 0 and now - self.last_page >= self.quiet_s

    def refill_target(self, pooled: int, page_sessions: int) -> int:
        """How many ready kernels to keep: the class's size, less what the session limit leaves no room for."""
        if self.max_sessions is None:
            return self.size
        return max(0, min(self.size, self.max_sessions - page_sessions))

    def page_started(self) -> None:
        self.pages_in_flight += 1

    def page_ended(self) -> None:
        self.pages_in_flight = max(0, self.pages_in_flight - 1)
        self.last_page = time.monotonic()


POOL: ClassPool | None = None


def _renice(pid: int | None, value: int) -> None:
    if pid is None:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, pid, value)
    except (OSError, AttributeError):  # lowering niceness back needs a privilege: the kernel stays niced
        pass


def _kernel_pid(manager: Any, kernel_id: str) -> int | None:
    try:
        return int(manager.get_kernel(kernel_id).provisioner.process.pid)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _class_manager(base: type, pool: ClassPool) -> type:
    """``base`` (Voila's preheating kernel manager) with the class's warm-up and refill policy."""

    class ClassKernelManager(base):  # type: ignore[misc, valid-type]
        _class_refill: asyncio.Task | None = None
        _class_slots: asyncio.Semaphore | None = None
        _class_refill_kwargs: dict = {}

        def fill_if_needed(self, delay: float | None = None, notebook_name: str | None = None,
                           extra_kernel_env_variables: dict | None = None, **kwargs: Any) -> None:
            if delay is None:
                # A page took a kernel: replace it later, when no page is waiting (not after Voila's 1 s).
                self._class_refill_kwargs = {"notebook_name": notebook_name, **kwargs}
                if self._class_refill is None or self._class_refill.done():
                    self._class_refill = asyncio.ensure_future(self._refill_when_quiet())
                return
            # The start (or a refill below): the page's own variables are not passed to another page's kernel.
            super().fill_if_needed(delay=delay, notebook_name=notebook_name, **kwargs)

        async def _initialize(self, notebook_path: str, kernel_id: str | None = None, **kwargs: Any) -> Any:
            if kernel_id is not None:  # a restart: Voila re-runs the notebook in that kernel
                return await super()._initialize(notebook_path, kernel_id, **kwargs)
            if self._class_slots is None:
                self._class_slots = asyncio.Semaphore(pool.concurrency)
            await self._class_slots.acquire()
            try:
                content = await super()._initialize(notebook_path, kernel_id, **kwargs)
            except BaseException:
                self._class_slots.release()
                raise
            started = content["kernel_id"]
            if pool.ready_logged:
                _renice(_kernel_pid(self, started), REFILL_NICE)
            asyncio.ensure_future(self._release_when_warm(started))
            return content

        async def _release_when_warm(self, kernel_id: str, limit_s: float = 120.0) -> None:
            deadline = time.monotonic() + limit_s
            while kernel_id not in pool.warm and kernel_id in self and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            self._class_slots.release()
            if not pool.ready_logged and len(pool.warm) >= pool.size:
                pool.ready_logged = True
                self.log.info("morph: class of %d ready: %d kernels warm in %.1f s", pool.size, pool.size,
                              time.monotonic() - pool.started)

        async def get_rendered_notebook(self, notebook_name: str, *args: Any, **kwargs: Any) -> Any:
            render_task, rendered, kernel_id = await super().get_rendered_notebook(notebook_name, *args, **kwargs)
            _renice(_kernel_pid(self, kernel_id), 0)  # a page's kernel runs at normal priority where allowed
            return render_task, rendered, kernel_id

        async def _refill_when_quiet(self) -> None:
            options = dict(self._class_refill_kwargs)
            notebook = options.get("notebook_name")
            while True:
                while not pool.quiet():
                    await asyncio.sleep(1.0)
                ready = self._pools.get(notebook, [])
                pages = max(0, len(self.list_kernel_ids()) - sum(len(p) for p in self._pools.values()))
                if len(ready) >= pool.refill_target(len(ready), pages):
                    return
                self._start_one(notebook, options)
                item = self._pools[notebook][-1]
                await asyncio.wait([item])  # started; its warm-up is niced, and the next waits for quiet again
                kernel_id = item.result()["kernel_id"] if not item.cancelled() and item.exception() is None else None
                deadline = time.monotonic() + 120
                while kernel_id and kernel_id not in pool.warm and kernel_id in self and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                if kernel_id in pool.warm:
                    self.log.info("morph: a kernel taken by a page was replaced; %d ready",
                                  len(self._pools.get(notebook, [])))

        def _start_one(self, notebook: str, options: dict) -> None:
            """Voila's fill for one more kernel: its pool size set, for this call, to what the pool holds plus one."""
            saved = self.kernel_pools_config
            held = len(self._pools.get(notebook, []))
            self.kernel_pools_config = {"default": {**saved.get("default", {}), "pool_size": held + 1}}
            try:
                super().fill_if_needed(delay=0, **{k: v for k, v in options.items()})
            finally:
                self.kernel_pools_config = saved

    ClassKernelManager.__name__ = ClassKernelManager.__qualname__ = f"Class{base.__name__}"
    return ClassKernelManager


def install(size: int, max_sessions: int | None = None, quiet_s: float = QUIET_S) -> ClassPool:
    """Put the class's policy into Voila (in the server process, before Voila starts); the shared state."""
    global POOL
    import voila.app
    from voila.handler import VoilaHandler
    from voila.request_info_handler import RequestInfoSocketHandler

    pool = POOL = ClassPool(size, max_sessions=max_sessions, quiet_s=quiet_s)
    factory = voila.app.voila_kernel_manager_factory

    def class_factory(base_class: type, preheat_kernel: bool, default_pool_size: int, **kwargs: Any) -> type:
        made = factory(base_class, preheat_kernel, default_pool_size, **kwargs)
        return _class_manager(made, pool) if preheat_kernel else made

    voila.app.voila_kernel_manager_factory = class_factory

    generator = VoilaHandler.get_generator

    async def get_generator(self: Any, *args: Any, **kwargs: Any) -> Any:
        pool.page_started()
        try:
            async for part in generator(self, *args, **kwargs):
                yield part
        finally:
            pool.page_ended()

    VoilaHandler.get_generator = get_generator  # type: ignore[method-assign]

    opened = RequestInfoSocketHandler.open

    def open_(self: Any, kernel_id: str) -> None:
        pool.warm.add(kernel_id)  # a pooled kernel built its dashboard and now waits for its page
        opened(self, kernel_id)

    RequestInfoSocketHandler.open = open_  # type: ignore[method-assign]
    return pool
