"""DomainBalancedBatchSampler: exact per-domain counts, determinism and epochs."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hf_bigdrop.data import DomainBalancedBatchSampler

DOMAINS = np.array([0] * 50 + [2] * 13 + [3] * 31)  # domain 1 is a held-out domain (absent from train)


def _batches(sampler):
    return [list(b) for b in sampler]


def test_each_batch_holds_exactly_per_domain_batch_size():
    sampler = DomainBalancedBatchSampler(DOMAINS, per_domain_batch_size=4, seed=0)
    assert len(sampler) == 13  # ceil(50 / 4): the largest domain is covered once
    batches = _batches(sampler)
    assert len(batches) == 13
    for batch in batches:
        assert Counter(DOMAINS[batch].tolist()) == {0: 4, 2: 4, 3: 4}
    first_domain = [i for b in batches for i in b if DOMAINS[i] == 0]
    assert len(set(first_domain[:50])) == 50  # largest domain: a permutation, no repeat within the pass


def test_small_domains_reshuffle_and_cover():
    batches = _batches(DomainBalancedBatchSampler(DOMAINS, per_domain_batch_size=4, seed=0))
    small = [i for b in batches for i in b if DOMAINS[i] == 2]
    assert set(small[:13]) == set(np.flatnonzero(DOMAINS == 2))


def test_determinism_and_set_epoch():
    a = DomainBalancedBatchSampler(DOMAINS, per_domain_batch_size=4, seed=0)
    b = DomainBalancedBatchSampler(DOMAINS, per_domain_batch_size=4, seed=0)
    c = DomainBalancedBatchSampler(DOMAINS, per_domain_batch_size=4, seed=1)
    assert _batches(a) == _batches(b) == _batches(a)
    assert _batches(a) != _batches(c)
    a.set_epoch(1)
    assert _batches(a) != _batches(b)
    b.set_epoch(1)
    assert _batches(a) == _batches(b)


def test_options_and_dataloader():
    sampler = DomainBalancedBatchSampler(DOMAINS, 3, num_batches=5)
    dataset = torch.arange(len(DOMAINS))
    loader = DataLoader(dataset, batch_sampler=sampler)
    batches = list(loader)
    assert len(batches) == 5
    for batch in batches:
        assert Counter(DOMAINS[batch.numpy()].tolist()) == {0: 3, 2: 3, 3: 3}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"per_domain_batch_size": 0}, "per_domain_batch_size must be"),
        ({"per_domain_batch_size": 2, "num_batches": 0}, "num_batches must be"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DomainBalancedBatchSampler(DOMAINS, **kwargs)


def test_empty_dataset_is_refused():
    with pytest.raises(ValueError, match="No domain to sample from"):
        DomainBalancedBatchSampler(np.empty(0, dtype=np.int64), per_domain_batch_size=2)
