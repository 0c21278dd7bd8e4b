"""Runnable federated simulations (issue 4). Until then the main job is `fedsplit inspect`."""
