"""Training: data sets, the digit evaluator, networks and one compact recipe per family."""
