"""Remote exec (PROTOCOL.md section 8): commands run in their own process group, streamed.

``spawn`` starts a process fast on any loop, ``pipes`` moves its bytes with backpressure,
``request`` checks what a client asked for, ``runs`` drives one run to its reaping and
``service`` holds the op table and the limits.
"""

from .service import ExecService

__all__ = ["ExecService"]
