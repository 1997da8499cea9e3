"""Scoring archives offline: file readers and writers, the local job and the Dask job."""
