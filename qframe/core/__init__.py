"""The framework core: knows no concrete model, dataset or strategy, and nothing of Hydra plugins."""
