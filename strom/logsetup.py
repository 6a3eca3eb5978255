"""Logging: one readable line per record on stderr."""

from __future__ import annotations

import logging
import os


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(
        logging, os.environ.get("STROM_LOG_LEVEL", "INFO").upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    # The ocpp library logs every frame at INFO; that is debug detail for an operator.
    logging.getLogger("ocpp").setLevel(max(level, logging.WARNING))
    logging.getLogger("websockets").setLevel(max(level, logging.WARNING))
