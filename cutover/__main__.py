"""``python -m cutover`` is the same as the ``cutover`` console script."""

import sys

from cutover.cli import main

sys.exit(main())
