"""cli: see the package map in README.md (Architecture)."""
