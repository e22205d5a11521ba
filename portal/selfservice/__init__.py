"""Customer self-service beyond paying and disputing: AP address changes and approvers (docs/selfservice.md)."""
