"""``python -m morph``: the same as the ``morph`` command."""

import sys

from .cli import main

sys.exit(main())
