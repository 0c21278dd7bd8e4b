"""Flower strategies that orchestrate the server side of a federated run (`split_training.SplitTraining`)."""
