"""recommend.algorithms and recommend.evaluation on small synthetic matrices (no database), plus one slow
test on the real MovieLens-100k data."""

import importlib.util
import math

import numpy as np
import pytest
import scipy.sparse as sp

from recommend.algorithms import (
    ContentSimilarity,
    Hybrid,
    ImplicitALS,
    Interactions,
    ItemKNN,
    MostPopular,
    Recommender,
    interaction_matrix,
    ndcg_at_k,
    normalise_scores,
    select_by_validation,
    split_per_user,
    top_k,
    tune_hybrid_weights,
)
from recommend.evaluation import evaluate_recommender, ranking_metrics, read_atomic_file


def matrix_from(rows: dict[int, list[int]], n_items: int) -> sp.csr_matrix:
    pairs = [(user, item) for user, items in rows.items() for item in items]
    return interaction_matrix([u for u, _ in pairs], [i for _, i in pairs], shape=(max(rows) + 1, n_items))


@pytest.fixture
def clusters() -> sp.csr_matrix:
    """Two tastes: users 0-4 like items 0-2, users 5-12 like items 3-5 (so 3-5 are the most popular).

    User 13 has items 0 and 1 only: item 2 is the obviously right next item, yet not a popular one.
    """
    rows = {user: [0, 1, 2] for user in range(5)}
    rows.update({user: [3, 4, 5] for user in range(5, 13)})
    rows[13] = [0, 1]
    return matrix_from(rows, 6)


def random_matrix(users: int = 60, items: int = 40, density: float = 0.15, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((users, items)) < density).astype(np.float32)
    dense[np.arange(users), rng.integers(0, items, users)] = 1.0  # nobody is empty
    return sp.csr_matrix(dense)


# ------------------------------------------------------------------------------------------- data


def test_interactions_from_pairs_maps_ids_and_counts_repeats_once():
    data = Interactions.from_pairs([("ann", "tv"), ("ann", "tv"), ("bob", "radio"), ("ann", "radio")])
    assert data.user_ids == ["ann", "bob"] and data.item_ids == ["tv", "radio"]
    assert data.matrix.toarray().tolist() == [[1.0, 1.0], [0.0, 1.0]]
    summed = Interactions.from_pairs([("ann", "tv", 2.0), ("ann", "tv", 3.0)], binary=False)
    assert summed.matrix[0, 0] == 5.0
    fixed = Interactions.from_pairs([("ann", "tv"), ("ann", "gone")], item_ids=["radio", "tv"])
    assert fixed.matrix.shape == (1, 2) and fixed.matrix.toarray().tolist() == [[0.0, 1.0]]


def test_split_per_user_is_seeded_disjoint_and_complete():
    matrix = random_matrix()
    train, test = split_per_user(matrix, 0.2, seed=3)
    again_train, again_test = split_per_user(matrix, 0.2, seed=3)
    assert (train != again_train).nnz == 0 and (test != again_test).nnz == 0
    assert train.multiply(test).nnz == 0
    assert ((train + test) != matrix).nnz == 0
    per_user = np.diff(matrix.indptr)
    held = np.diff(test.indptr)
    for n, h in zip(per_user, held, strict=True):
        assert h == (0 if n < 2 else min(max(1, round(0.2 * n)), n - 1))
    other_train, _ = split_per_user(matrix, 0.2, seed=4)
    assert (train != other_train).nnz > 0


def test_read_atomic_file_uses_field_names(tmp_path):
    path = tmp_path / "x.inter"
    path.write_text("user_id:token\titem_id:token\trating:float\n1\t7\t4\n2\t9\n", encoding="utf-8")
    assert read_atomic_file(path) == [{"user_id": "1", "item_id": "7", "rating": "4"},
                                      {"user_id": "2", "item_id": "9", "rating": ""}]


# ------------------------------------------------------------------------------------ recommenders


def test_most_popular_ranks_by_interaction_count(clusters):
    model = MostPopular().fit(clusters)
    assert model.recommend(13, k=1)[0][0] in {3, 4, 5}
    assert [item for item, _ in model.recommend(0, k=3)] == [3, 4, 5]


def test_item_knn_ranks_the_co_occurring_item_first(clusters):
    model = ItemKNN(neighbours=3, shrink=0.0, weighting="none").fit(clusters)
    assert model.recommend(13, k=1)[0][0] == 2
    assert ItemKNN().fit(clusters).recommend(13, k=1)[0][0] == 2  # defaults (BM25, shrink) too


def test_item_knn_prunes_to_k_neighbours_without_self_similarity():
    matrix = random_matrix()
    model = ItemKNN(neighbours=5, shrink=2.0, weighting="none").fit(matrix)
    similarity = model.similarity.tocsc()
    assert np.diff(similarity.indptr).max() <= 5
    assert np.all(similarity.diagonal() == 0)
    # blocks are an implementation detail: the result does not depend on them
    blocked = ItemKNN(neighbours=5, shrink=2.0, weighting="none", block_size=7).fit(matrix)
    assert abs(blocked.similarity - model.similarity).max() < 1e-6


def test_item_knn_cosine_with_shrinkage_matches_the_formula():
    matrix = random_matrix(20, 6, 0.5, seed=2)
    model = ItemKNN(neighbours=10, shrink=3.0, weighting="none").fit(matrix)
    x = matrix.toarray()
    i, j = 0, 1
    expected = x[:, i] @ x[:, j] / (np.linalg.norm(x[:, i]) * np.linalg.norm(x[:, j]) + 3.0)
    assert model.similarity[i, j] == pytest.approx(expected, rel=1e-5)


def test_implicit_als_ranks_the_obviously_right_item_first(clusters):
    model = ImplicitALS(factors=4, regularization=0.1, alpha=10.0, iterations=20, seed=1).fit(clusters)
    assert model.recommend(13, k=1)[0][0] == 2
    assert model.score([13]).shape == (1, 6)
    again = ImplicitALS(factors=4, regularization=0.1, alpha=10.0, iterations=20, seed=1).fit(clusters)
    assert np.allclose(model.score([13]), again.score([13]))  # seeded


def test_implicit_als_folds_in_a_new_history(clusters):
    model = ImplicitALS(factors=4, regularization=0.1, alpha=10.0, iterations=20, seed=1).fit(clusters)
    new_shopper = interaction_matrix([0, 0], [3, 4], shape=(1, 6))
    assert int(np.argmax(np.where(new_shopper.toarray()[0] > 0, -np.inf, model.score_history(new_shopper)[0]))) == 5


def test_content_similarity_follows_the_item_vectors(clusters):
    vectors = np.array([[1, 0, 0], [0, 1, 0], [0.9, 0.1, 0], [0, 0, 1], [0, 0, 1], [0, 0.2, 1]])
    model = ContentSimilarity(vectors).fit(clusters)
    assert model.recommend(13, k=1)[0][0] == 2
    one_item = interaction_matrix([0], [3], shape=(1, 6))
    scores = model.score_history(one_item)[0]
    assert scores[4] > scores[5] > scores[0]
    with pytest.raises(ValueError):
        ContentSimilarity(vectors[:3]).fit(clusters)


@pytest.mark.parametrize("factory", [
    MostPopular,
    lambda: ItemKNN(neighbours=10),
    lambda: ImplicitALS(factors=8, regularization=1.0, iterations=5),
    lambda: ContentSimilarity(np.random.default_rng(0).normal(size=(40, 8))),
    lambda: Hybrid({"knn": ItemKNN(), "pop": MostPopular()}, {"knn": 0.7, "pop": 0.3}),
])
def test_seen_items_are_never_recommended(factory):
    matrix = random_matrix()
    model: Recommender = factory().fit(matrix)
    users = np.arange(matrix.shape[0])
    ranked = model.recommend_batch(users, k=10)
    for user in users:
        seen = set(matrix[user].indices)
        assert not seen & set(ranked[user]), user
        assert not seen & {item for item, _ in model.recommend(int(user), k=10)}
    included = model.recommend_batch(users, k=matrix.shape[1], exclude_seen=False)
    assert sorted(included[0]) == list(range(matrix.shape[1]))


def test_recommend_returns_fewer_items_when_the_catalogue_runs_out(clusters):
    model = MostPopular().fit(clusters)
    assert len(model.recommend(0, k=10)) == 3  # six items, three already seen


def test_unfitted_recommender_says_so():
    with pytest.raises(RuntimeError):
        MostPopular().recommend(0)


# ------------------------------------------------------------------------------------------ hybrid


def test_normalisation_ignores_the_users_own_items():
    scores = np.array([[10.0, 1.0, 3.0, 2.0]])
    seen = sp.csr_matrix(np.array([[1, 0, 0, 0]]))
    assert normalise_scores(scores, seen, "minmax").tolist() == [[0.0, 0.0, 1.0, 0.5]]
    assert normalise_scores(scores, seen, "rank").tolist() == [[0.0, 0.0, 1.0, 0.5]]
    flat = normalise_scores(np.ones((1, 3)), None, "minmax")
    assert np.all(np.isfinite(flat))


@pytest.mark.parametrize("normalisation", ["minmax", "rank"])
@pytest.mark.parametrize("only", ["knn", "als"])
def test_hybrid_with_one_nonzero_weight_ranks_like_that_component(normalisation, only):
    matrix = random_matrix(seed=5)
    components = {"knn": ItemKNN(neighbours=15), "als": ImplicitALS(factors=8, regularization=1.0, iterations=5),
                  "pop": MostPopular()}
    weights = {"knn": 0.0, "als": 0.0, "pop": 0.0, only: 0.4}
    hybrid = Hybrid(components, weights, normalisation).fit(matrix)
    alone = {"knn": ItemKNN(neighbours=15), "als": ImplicitALS(factors=8, regularization=1.0, iterations=5)}[only]
    alone.fit(matrix)
    users = np.arange(matrix.shape[0])
    assert np.array_equal(hybrid.recommend_batch(users, k=10), alone.recommend_batch(users, k=10))


def test_hybrid_rejects_bad_weights():
    with pytest.raises(ValueError):
        Hybrid({"pop": MostPopular()}, {"other": 1.0})
    with pytest.raises(ValueError):
        Hybrid({"pop": MostPopular()}, {"pop": 0.0}).fit(random_matrix())


class Spy(Recommender):
    """Records every matrix it is fitted on; scores like item-kNN."""

    def __init__(self, inner: Recommender) -> None:
        self.inner = inner
        self.seen_fits: list[sp.csr_matrix] = []

    def _fit(self, interactions):
        self.seen_fits.append(interactions.copy())
        self.inner.fit(interactions)

    def score(self, user_rows):
        return self.inner.score(user_rows)

    def score_history(self, histories):
        return self.inner.score_history(histories)


def test_weight_tuner_only_ever_sees_training_data():
    matrix = random_matrix(80, 50, 0.2, seed=9)
    train, test = split_per_user(matrix, 0.2, seed=42)
    spies = {"knn": Spy(ItemKNN(neighbours=10)), "pop": Spy(MostPopular())}
    result = tune_hybrid_weights(spies, train, seed=42, step=0.25)
    for spy in spies.values():
        assert spy.seen_fits
        for fitted in spy.seen_fits:
            assert fitted.multiply(test).nnz == 0  # no test pair reaches a fit
            assert (fitted - fitted.multiply(train)).nnz == 0  # only training pairs
            assert fitted.nnz < train.nnz  # and not even all of those: validation is held out
    validation = result.validation_matrix
    assert validation.nnz > 0
    assert validation.multiply(test).nnz == 0 and (validation - validation.multiply(train)).nnz == 0
    assert result.fit_matrix.multiply(validation).nnz == 0
    assert math.isclose(sum(result.weights.values()), 1.0)
    assert result.validation_ndcg >= max(result.component_ndcg.values()) - 1e-12
    # the outcome depends on the training data alone: another test split, same weights
    spies_again = {"knn": ItemKNN(neighbours=10), "pop": MostPopular()}
    assert tune_hybrid_weights(spies_again, train, seed=42, step=0.25).weights == result.weights


def test_weight_tuner_prefers_the_informative_component(clusters):
    rows = {user: [0, 1, 2, 6, 7] for user in range(10)}
    rows.update({user: [3, 4, 5, 8, 9] for user in range(10, 30)})
    matrix = matrix_from(rows, 10)
    result = tune_hybrid_weights({"knn": ItemKNN(neighbours=5), "pop": MostPopular()}, matrix, step=0.5,
                                 normalisations=("minmax",))
    assert result.weights["knn"] > 0
    coordinate = tune_hybrid_weights({"knn": ItemKNN(neighbours=5), "pop": MostPopular()}, matrix,
                                     method="coordinate", step=0.5)
    assert coordinate.weights["knn"] > 0 and coordinate.validation_ndcg >= result.validation_ndcg - 1e-12


def test_select_by_validation_picks_the_better_setting():
    rows = {user: [0, 1, 2, 6, 7] for user in range(10)}
    rows.update({user: [3, 4, 5, 8, 9] for user in range(10, 30)})
    matrix = matrix_from(rows, 10)
    selection = select_by_validation({"popular": MostPopular, "knn": lambda: ItemKNN(neighbours=5)}, matrix)
    assert selection.best == "knn" and selection.scores["knn"] > selection.scores["popular"]


# ----------------------------------------------------------------------------------------- metrics


def test_top_k_orders_best_first_and_breaks_ties_by_index():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, -np.inf]])
    assert top_k(scores, 3).tolist() == [[1, 3, 2]]
    assert top_k(scores, 10).shape == (1, 5)


def test_metrics_on_a_hand_computed_example():
    recommended = np.array([[1, 2, 3], [4, 5, 0], [0, 1, 2]])
    relevant = sp.csr_matrix(np.array([
        [0, 0, 1, 0, 0, 1],  # user 0: items 2 and 5; one hit at rank 2
        [1, 0, 0, 0, 1, 0],  # user 1: items 0 and 4; hits at ranks 1 and 3
        [0, 0, 0, 0, 0, 0],  # user 2: nothing held out, skipped
    ]))
    metrics = ranking_metrics(recommended, relevant, k=3, n_items=10)
    d2, d3 = 1 / math.log2(3), 1 / math.log2(4)
    ndcg_0 = d2 / (1 + d2)
    ndcg_1 = (1 + d3) / (1 + d2)
    assert metrics.users == 2
    assert metrics.precision == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert metrics.recall == pytest.approx((1 / 2 + 2 / 2) / 2)
    assert metrics.ndcg == pytest.approx((ndcg_0 + ndcg_1) / 2)
    assert metrics.coverage == pytest.approx(6 / 10)  # items 0-5, from the two evaluated users only
    per_user = ndcg_at_k(recommended, relevant, k=3)
    assert per_user[:2] == pytest.approx([ndcg_0, ndcg_1]) and math.isnan(per_user[2])


def test_ideal_dcg_is_capped_at_k():
    recommended = np.array([[0, 1]])
    relevant = sp.csr_matrix(np.ones((1, 5)))
    assert ndcg_at_k(recommended, relevant, k=2)[0] == pytest.approx(1.0)
    assert ranking_metrics(recommended, relevant, k=2, n_items=5).recall == pytest.approx(2 / 5)


def test_evaluate_recommender_excludes_training_items(clusters):
    train = clusters
    test = interaction_matrix([13], [2], shape=clusters.shape)
    metrics = evaluate_recommender(ItemKNN(neighbours=3, weighting="none").fit(train), test, k=1)
    assert metrics.users == 1 and metrics.precision == 1.0 and metrics.ndcg == 1.0
    assert evaluate_recommender(MostPopular().fit(train), test, k=1).precision == 0.0


# ---------------------------------------------------------------------------------------- the real data


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("recbole") is None, reason="recbole==1.2.1 (bench data) not installed")
def test_movielens_hybrid_beats_popularity_and_item_knn():
    from recommend.evaluation import run_evaluation

    report = run_evaluation(seed=42, k=10, tune_hyperparameters=False, als_iterations=10, use_embeddings=False,
                            weight_step=0.2, progress=False)
    assert (report.users, report.items) == (943, 1682)
    assert report.train_interactions + report.test_interactions == 100_000
    hybrid = report.hybrid.metrics.ndcg
    popular = report.result("most-popular").metrics.ndcg
    knn = report.result("item-kNN").metrics.ndcg
    assert 0.18 < popular < 0.26 and 0.35 < knn < 0.45  # the published ballpark for this protocol
    assert hybrid > popular and hybrid > knn
