"""fedsplit: simulate DuetFace-style federated split learning for face recognition."""

__version__ = "0.1.0"
