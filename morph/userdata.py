"""Where Morph keeps what a user makes: a per-user data folder, never the installed package.

``morph latency calibrate --save NAME`` writes ``calibrations/NAME.json``
here, and calibrations are looked up here before the shipped ones, so a
calibration of your own machine is found by name. The folder is, in order:

1. ``$MORPH_DATA_HOME``, when set (tests point it at a temporary folder);
2. ``$XDG_DATA_HOME/morph``, when ``XDG_DATA_HOME`` is set;
3. ``~/.local/share/morph``.

Nothing is created until something is saved.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["user_data_dir", "user_calibrations_dir"]


def user_data_dir() -> Path:
    """The per-user data folder (see the module docstring for the order of choices)."""
    override = os.environ.get("MORPH_DATA_HOME")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    # The XDG specification ignores a relative XDG_DATA_HOME.
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "morph"
    return Path.home() / ".local" / "share" / "morph"


def user_calibrations_dir() -> Path:
    """Folder of the user's own calibrations: ``<user data folder>/calibrations``."""
    return user_data_dir() / "calibrations"
