"""``python -m popgym_arcade.cli``: the ``popgym-arcade`` command."""

import sys

from popgym_arcade.cli import main

sys.exit(main())
