"""The engine's one error type: an HTTP status, a stable code and a sentence for people."""

from __future__ import annotations


class EngineError(Exception):
    def __init__(self, status: int, code: str, message: str, detail: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail or {}


def envelope(code: str, message: str, detail: dict | None = None) -> dict:
    """Every error answer's body: ``{"error": {"code", "message", "detail"}}``."""
    return {"error": {"code": code, "message": message, "detail": detail or {}}}
