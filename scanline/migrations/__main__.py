"""``python -m scanline.migrations [revision]``: bring the database schema up to date."""

import logging
import sys

from scanline.migrations import upgrade

logging.basicConfig(level=logging.INFO, format="%(message)s")
upgrade(revision=sys.argv[1] if len(sys.argv) > 1 else "heads")
