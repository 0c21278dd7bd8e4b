"""Runnable simulations: the centralized strategy comparison now, the federated run with issue 4."""
