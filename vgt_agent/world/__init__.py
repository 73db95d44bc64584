"""The embedded world: procedural shapes scenes with exact masks and questions."""
