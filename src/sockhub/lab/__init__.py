"""The course lab: listeners speaking the course notes' own formats, and a checker for theirs.

Course programs (raw ``recv(1024)`` text, ``struct.pack('i')`` lengths, decimal lengths,
JSON headers) cannot speak sockhub frames; the lab meets them where they are and carries
what they mean (a chat line, an uploaded file, a command) to a real sockhub server through
sockhub's own client, so the server's rules (rooms, path rules, quota, exec sandbox) apply.
"""

from .formats import FORMATS, Format, by_name

__all__ = ["FORMATS", "Format", "by_name"]
