"""Installed versions of the tools that make the numbers, read from package metadata (no imports)."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def tool_versions(names: tuple[str, ...] | list[str]) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "missing"
    return versions
