"""Datasets, augmentation and training targets."""
