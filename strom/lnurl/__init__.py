"""LNURL (LUD-06/16 pay, LUD-03 withdraw, LUD-17 schemes): protocol shapes, no HTTP."""

from strom.lnurl.codec import lnurl_encode
from strom.lnurl.errors import LnurlError

__all__ = ["LnurlError", "lnurl_encode"]
