"""Voila's page templates compiled once per server, not once per page.

Voila renders every page (and, with a pool, every ready kernel) through a new
nbconvert exporter, and each exporter makes a new Jinja environment, which
compiles the page's templates again: about thirteen templates per page, most
of the server process's own CPU per page (measured with cProfile over
protocol viewers arriving one every 2 s; benchmarks/README.md). Jinja can keep
compiled templates in a bytecode cache shared between environments; nbconvert
does not give it one. :func:`install` gives every exporter's environment in
this process the same in-memory :class:`SharedTemplateCache`.

A compiled template is reused only for the same file with the same source
(Jinja's checksum), compiled under the same environment options (async or not,
delimiters, extensions...): what the compiled code depends on.
"""

from __future__ import annotations

from typing import Any, Hashable

from jinja2.bccache import Bucket, BytecodeCache

__all__ = ["SharedTemplateCache", "CACHE", "install", "environment_key"]


def environment_key(environment: Any) -> tuple[Hashable, ...]:
    """The options of a Jinja environment that change what a template compiles to."""
    autoescape = environment.autoescape
    return (
        environment.is_async, environment.optimized, environment.finalize is not None,
        autoescape if isinstance(autoescape, bool) else id(autoescape),
        tuple(sorted(environment.extensions)),
        environment.block_start_string, environment.block_end_string,
        environment.variable_start_string, environment.variable_end_string,
        environment.comment_start_string, environment.comment_end_string,
        environment.line_statement_prefix, environment.line_comment_prefix,
        environment.trim_blocks, environment.lstrip_blocks,
        environment.newline_sequence, environment.keep_trailing_newline,
    )


class SharedTemplateCache(BytecodeCache):
    """Compiled templates in memory, shared by every environment of the process.

    Parameters
    ----------
    max_templates : int
        Most templates kept; past it the cache starts again (a server renders a
        few dozen distinct templates).

    Attributes
    ----------
    hits, misses : int
        Templates found compiled, and compiled anew.
    """

    def __init__(self, max_templates: int = 512) -> None:
        self.max_templates = int(max_templates)
        self.code: dict[tuple[Hashable, ...], Any] = {}
        self.hits = 0
        self.misses = 0

    def _key(self, bucket: Bucket) -> tuple[Hashable, ...]:
        return (environment_key(bucket.environment), bucket.key, bucket.checksum)

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self.code.get(self._key(bucket))
        if code is None:
            self.misses += 1
        else:
            self.hits += 1
            bucket.code = code  # a code object is immutable: each environment runs it in its own namespace

    def dump_bytecode(self, bucket: Bucket) -> None:
        if len(self.code) >= self.max_templates:
            self.code.clear()
        self.code[self._key(bucket)] = bucket.code


CACHE = SharedTemplateCache()
"""The process's cache, which :func:`install` gives every nbconvert exporter's environment."""


def install(cache: Any = None) -> None:
    """Give every nbconvert template exporter made from now on in this process a shared bytecode cache; idempotent."""
    from nbconvert.exporters.templateexporter import TemplateExporter

    create = TemplateExporter._create_environment
    if getattr(create, "_morph_cache", None) is not None:
        return
    shared = CACHE if cache is None else cache

    def _create_environment(self: Any) -> Any:
        environment = create(self)
        environment.bytecode_cache = shared
        return environment

    _create_environment._morph_cache = shared  # type: ignore[attr-defined]
    TemplateExporter._create_environment = _create_environment  # type: ignore[method-assign]
