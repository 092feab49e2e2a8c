"""Command front end: ADI doorbells, descriptor fetch, the QoS arbiter and the engine."""
