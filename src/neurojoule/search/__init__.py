"""Evolutionary search: spaces as data, a weight-entangled supernet (models.elastic), fitness
from accuracy and measured energy, and the search algorithms."""
