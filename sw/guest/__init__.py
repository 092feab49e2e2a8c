"""The guest side: the frontend driver's rings and doorbells."""
