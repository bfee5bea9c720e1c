"""Data: the registry of datasets, their file formats, the split, and the on-device loader."""
