"""Identity-disjoint client partitions and evaluation hold-outs."""

import numpy as np
import pytest

from fedsplit.data.partition import holdout_identities, partition

SCHEMES = ["iid", "dirichlet", "quantity"]


@pytest.fixture
def labels():
    # 60 identities with 1 to 12 images each, shuffled so identity order is not index order.
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(60), rng.integers(1, 13, 60))
    return rng.permutation(labels)


def identities(labels, parts):
    return [set(np.unique(labels[p]).tolist()) for p in parts]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_identity_disjoint_and_excluded_nowhere(labels, scheme):
    excluded = holdout_identities(labels, 6, seed=1)
    parts = partition(labels, 5, scheme, alpha=0.5, seed=3, exclude=excluded)
    assert len(parts) == 5
    per_client = identities(labels, parts)
    assert all(len(ids) >= 1 for ids in per_client)
    for a in range(5):
        assert per_client[a].isdisjoint(excluded.tolist())
        for b in range(a + 1, 5):
            assert per_client[a].isdisjoint(per_client[b])  # each identity on one client only
    assert set().union(*per_client) == set(labels.tolist()) - set(excluded.tolist())
    everything = np.concatenate(parts)
    assert len(everything) == len(np.unique(everything))  # no sample on two clients
    for p in parts:
        assert p.dtype == np.int64 and np.all(np.diff(p) > 0)  # sorted, no repeats


@pytest.mark.parametrize("scheme", ["iid", "dirichlet"])
def test_whole_identities_are_kept(labels, scheme):
    excluded = np.array([0, 1, 2])
    parts = partition(labels, 4, scheme, seed=0, exclude=excluded)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.flatnonzero(~np.isin(labels, excluded)))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_fixed_seed_fixed_partition(labels, scheme):
    a = partition(labels, 6, scheme, alpha=0.3, seed=11)
    b = partition(labels, 6, scheme, alpha=0.3, seed=11)
    c = partition(labels, 6, scheme, alpha=0.3, seed=12)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_iid_shares_differ_by_at_most_one_identity(labels):
    counts = [len(ids) for ids in identities(labels, partition(labels, 7, "iid", seed=2))]
    assert max(counts) - min(counts) <= 1 and sum(counts) == 60


def test_dirichlet_small_alpha_is_more_unbalanced_than_iid(labels):
    def spread(scheme, alpha, seed):
        counts = [len(ids) for ids in identities(labels, partition(labels, 6, scheme, alpha=alpha, seed=seed))]
        return np.std(counts)

    iid = np.mean([spread("iid", 1.0, s) for s in range(10)])
    skewed = np.mean([spread("dirichlet", 0.1, s) for s in range(10)])
    mild = np.mean([spread("dirichlet", 100.0, s) for s in range(10)])
    assert skewed > 3 * max(iid, 0.5)
    assert skewed > mild


def test_quantity_keeps_a_client_fraction_and_at_least_two_images(labels):
    counts = np.bincount(labels)
    parts = partition(labels, 5, "quantity", alpha=0.3, seed=4)
    fractions = []
    for p in parts:
        kept = np.bincount(labels[p], minlength=len(counts))
        ids = np.flatnonzero(kept)
        assert np.all(kept[ids] >= np.minimum(2, counts[ids]))
        assert np.all(kept[ids] <= counts[ids])
        fractions.append(kept[ids].sum() / counts[ids].sum())
    assert max(fractions) == 1.0  # the largest client keeps everything
    assert min(fractions) < 0.7  # and the others keep visibly less
    same_deal = identities(labels, partition(labels, 5, "iid", seed=4))
    assert identities(labels, parts) == same_deal  # identities dealt exactly as iid


def test_holdout_is_deterministic_and_sized(labels):
    a = holdout_identities(labels, 10, seed=5)
    assert a.dtype == np.int64 and len(a) == 10 and len(np.unique(a)) == 10
    assert set(a.tolist()) <= set(labels.tolist()) and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, holdout_identities(labels, 10, seed=5))
    assert not np.array_equal(a, holdout_identities(labels, 10, seed=6))
    assert len(holdout_identities(labels, 0, seed=5)) == 0
    with pytest.raises(ValueError, match="count"):
        holdout_identities(labels, 61, seed=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"clients": 3, "scheme": "noniid"}, "scheme.*'noniid'"),
        ({"clients": 0}, "clients.*0"),
        ({"clients": 61}, "clients=61.*60 identities"),
        ({"clients": 55, "exclude": np.arange(10)}, "clients=55.*50 identities.*10 excluded"),
        ({"clients": 3, "alpha": 0.0}, "alpha.*0.0"),
        ({"clients": 3, "scheme": "dirichlet", "alpha": -1.0}, "alpha.*-1.0"),
    ],
)
def test_bad_parameters(labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        partition(labels, **kwargs)


def test_bad_labels():
    with pytest.raises(ValueError, match="labels"):
        partition(np.array([0.5, 1.5]), 1)
