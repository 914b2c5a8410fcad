"""Reproducible training of the models the project ships in models/."""
