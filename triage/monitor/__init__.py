"""Live quality: how each model version is doing on real traffic, from the decision record
(reviewers' labels, review rate, label mix, confidence, drift against cross-validation, shadow
agreement), printed, plotted and exported as gauges."""
