"""Making models: labelled data, data checks, candidates, training, evaluation, promotion."""
