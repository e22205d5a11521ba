"""staff: see the package map in README.md (Architecture)."""
