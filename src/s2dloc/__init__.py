"""s2dloc: deep direct sparse-to-dense visual localization with feature-metric PnP."""

import logging

__version__ = "0.1.0"

logger = logging.getLogger("s2dloc")
logger.addHandler(logging.NullHandler())
