"""customer: see the package map in README.md (Architecture)."""
