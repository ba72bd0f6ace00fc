"""``python -m sectra_client``: the ``sectra`` command, for machines without scripts on PATH."""

import sys

from .cli import main

sys.exit(main())
