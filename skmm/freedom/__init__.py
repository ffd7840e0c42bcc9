"""FREEDOM (Zhou and Shen, ACM MM 2023): the recommender, its two graphs and its torch module."""

from ._estimator import FREEDOMRecommender
from ._graph import EdgePruner, item_knn_graph, knn_neighbors, user_item_adjacency
from ._module import FREEDOMModule, bpr_logsigmoid

__all__ = ["EdgePruner", "FREEDOMModule", "FREEDOMRecommender", "bpr_logsigmoid",
           "item_knn_graph", "knn_neighbors", "user_item_adjacency"]
