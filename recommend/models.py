"""The recommend app keeps its trained models in the cache and files (recommend/engine.py); it has no tables.

Product embeddings moved to the search app (search.models.ProductEmbedding): the table was renamed, not
copied (recommend/migrations/0002_move_embeddings_to_search.py).
"""
