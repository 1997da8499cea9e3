"""The shape every model pipeline has: the names of its steps, shared by training and serving."""

from __future__ import annotations

# Every model is Pipeline(normalise -> features -> classifier). Serving finds the parts by these
# names, and a FeatureUnion of features names its readable (word) part READABLE_FEATURES.
NORMALISE, FEATURES, CLASSIFIER = "normalise", "features", "classifier"
READABLE_FEATURES = "word"
