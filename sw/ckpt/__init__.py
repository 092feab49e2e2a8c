"""The checkpointer: checkpoint storage, HA epochs, live migration and failover (DESIGN.md, "Checkpoints and migration")."""
