"""Testbenches of the command front end."""
