"""files (PROTOCOL.md section 7): verified, resumable uploads and zero-copy downloads."""

from .service import FilesService

__all__ = ["FilesService"]
