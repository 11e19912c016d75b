"""The price model: the data set, training, the card, safe loading, prediction (compiled
trees), the reference profile, and re-scoring with a candidate."""
