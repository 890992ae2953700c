"""What the clock services say, as bytes: RFC 867 daytime, RFC 868 time, NTP timestamps.

Pure functions of a Unix time, so the tests can pin the clock and compare what a
standard tool prints with what the server was told the time is.
"""

from __future__ import annotations

import struct
import time

__all__ = ["NTP_EPOCH_OFFSET", "daytime", "ntp_timestamp", "rfc868"]

NTP_EPOCH_OFFSET = 2_208_988_800
"""Seconds from 1900-01-01 (the RFC 868 and NTP epoch) to 1970-01-01 (the Unix epoch)."""
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")


def rfc868(now: float) -> bytes:
    """RFC 868: whole seconds since 1900 as 32 bits, big-endian (it wraps in 2036: era 1)."""
    return _U32.pack((int(now) + NTP_EPOCH_OFFSET) & 0xFFFF_FFFF)


def daytime(now: float) -> bytes:
    """RFC 867: one human-readable line; this is the RFC's own example format, local time.

    ``Tuesday, February 22, 1982 17:37:43-PST``
    """
    parts = time.localtime(now)
    return time.strftime("%A, %B %d, %Y %H:%M:%S-%Z", parts).encode("ascii", "replace") + b"\r\n"


def ntp_timestamp(now: float) -> bytes:
    """A 64-bit NTP timestamp: 32 bits of seconds since 1900, 32 bits of fraction."""
    seconds = int(now // 1)
    fraction = min(int((now - seconds) * 2**32), 2**32 - 1)
    return _U64.pack((((seconds + NTP_EPOCH_OFFSET) & 0xFFFF_FFFF) << 32) | fraction)
