"""Where Morph keeps what a user makes: per-user data and cache folders, never the installed package.

``morph latency calibrate --save NAME`` writes ``calibrations/NAME.json``
here, and calibrations are looked up here before the shipped ones, so a
calibration of your own machine is found by name. The folder is, in order:

1. ``$MORPH_DATA_HOME``, when set (tests point it at a temporary folder);
2. ``$XDG_DATA_HOME/morph``, when ``XDG_DATA_HOME`` is set;
3. ``~/.local/share/morph``.

Nothing is created until something is saved.

Fits computed once and stored (:mod:`morph.fitcache`) go to the cache folder
instead, chosen the same way from ``$MORPH_CACHE_HOME``, ``$XDG_CACHE_HOME/morph``
and ``~/.cache/morph``: deleting it is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["user_data_dir", "user_calibrations_dir", "user_cache_dir"]


def _folder(override: str, xdg: str, *fallback: str) -> Path:
    """``$override``, else ``$xdg/morph`` (when absolute), else ``~/<fallback>/morph``."""
    chosen = os.environ.get(override)
    if chosen:
        return Path(chosen).expanduser()
    base = os.environ.get(xdg)
    # The XDG specification ignores a relative base directory.
    if base and Path(base).is_absolute():
        return Path(base) / "morph"
    return Path.home().joinpath(*fallback, "morph")


def user_data_dir() -> Path:
    """The per-user data folder (see the module docstring for the order of choices)."""
    return _folder("MORPH_DATA_HOME", "XDG_DATA_HOME", ".local", "share")


def user_cache_dir() -> Path:
    """The per-user cache folder: ``$MORPH_CACHE_HOME``, ``$XDG_CACHE_HOME/morph`` or ``~/.cache/morph``."""
    return _folder("MORPH_CACHE_HOME", "XDG_CACHE_HOME", ".cache")


def user_calibrations_dir() -> Path:
    """Folder of the user's own calibrations: ``<user data folder>/calibrations``."""
    return user_data_dir() / "calibrations"
