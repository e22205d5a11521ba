"""AR self-service portal: the generator and the shared core (never imports Flask or webhook)."""

__version__ = "0.1.0"
