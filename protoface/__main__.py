"""``python -m protoface`` is the ``protoface`` command."""

import sys

from protoface.cli import main

sys.exit(main())
