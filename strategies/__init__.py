"""Flower strategies that orchestrate split training on the server (issue 4: federated simulation).

Empty until the federated simulation lands; the layout is fixed now so imports never move.
"""
