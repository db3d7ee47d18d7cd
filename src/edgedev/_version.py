"""The version of edgedev (a root module: every layer may read it; pyproject.toml says it too)."""

from __future__ import annotations

__version__ = "0.1.0"
