"""The ``movie-ranker`` model: a compact neural ranker trained on MovieLens 100k."""
