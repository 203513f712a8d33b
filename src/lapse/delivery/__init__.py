"""How a counted download reaches its client: HTTP semantics of sending a stored file, and nginx accel."""
