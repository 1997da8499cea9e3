"""The served model: report text in, prediction out. Imports no transport, store or training."""
