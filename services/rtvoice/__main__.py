"""``python -m rtvoice`` = the ``rtvoice`` command."""

import sys

from rtvoice.cli import main

sys.exit(main())
