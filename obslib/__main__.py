"""``python -m obslib``: the same as the ``obslib`` command."""

import sys

from obslib.cli import main

sys.exit(main())
