"""Privacy evaluation: what an honest-but-curious server can recover from the payloads it receives."""
