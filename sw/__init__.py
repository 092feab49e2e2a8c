"""siov package."""
