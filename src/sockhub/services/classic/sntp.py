"""An SNTP server's answer (RFC 4330 section 5), as a pure function of the request bytes.

Only client requests (mode 3) are answered, with mode 4; anything else, including
another server's reply or a symmetric or broadcast packet, gets no answer at all, so
the port cannot be used to bounce NTP traffic between two servers.
"""

from __future__ import annotations

import struct

from .clocks import ntp_timestamp

__all__ = ["PACKET", "PRECISION", "REFERENCE_ID", "STRATUM", "sntp_reply"]

PACKET = 48
"""An NTP header without extension fields or a MAC; longer requests are read up to here."""
MODE_CLIENT, MODE_SERVER = 3, 4
STRATUM = 1
REFERENCE_ID = b"LOCL"
"""RFC 4330 section 4: a stratum-1 server names its source; LOCL is 'uncalibrated local
clock', which is what the host's system clock is to us."""
PRECISION = -20
"""log2 seconds: Python reads the system clock to about a microsecond (2**-20 s)."""
_HEAD = struct.Struct("!BBBb")


def sntp_reply(request: bytes, received: float, transmit: float) -> bytes | None:
    """The server-mode reply to a client-mode ``request``, or None when there is none.

    ``received`` is when the request arrived, ``transmit`` when the reply leaves (Unix
    time). The originate timestamp is the request's transmit timestamp copied verbatim:
    that is how the client matches the reply to its request (some send a random cookie).
    """
    if len(request) < PACKET:
        return None
    first, _stratum, poll, _precision = _HEAD.unpack_from(request, 0)
    version, mode = (first >> 3) & 0x7, first & 0x7
    if mode != MODE_CLIENT or not 1 <= version <= 4:
        return None
    head = _HEAD.pack((0 << 6) | (version << 3) | MODE_SERVER, STRATUM, poll, PRECISION)
    return b"".join(
        (
            head,
            bytes(8),  # root delay and root dispersion: the reference is this host's clock
            REFERENCE_ID,
            ntp_timestamp(transmit),  # reference: the system clock is what we serve
            request[40:48],
            ntp_timestamp(received),
            ntp_timestamp(transmit),
        )
    )
