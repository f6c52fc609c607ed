"""A domain-balanced batch sampler: every batch holds the same number of examples from every training domain."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import Sampler

from .splitting import domain_ids

__all__ = ["DomainBalancedBatchSampler", "SeededBatchSampler", "SeededDataset"]


class DomainBalancedBatchSampler(Sampler[list[int]]):
    """Yields batches of dataset indices with exactly `per_domain_batch_size` examples of each domain.

    This is the paper's (and DomainBed's) protocol: each step draws, say, 32 examples from every training
    domain. Each domain's examples are read from its own endless stream: a seeded random permutation of the
    domain, then another permutation when it is used up, and so on. Small domains therefore repeat within
    an epoch; the largest one is seen once per epoch.

    **Epoch length.** `len(sampler)` is `num_batches` when given, else
    `ceil(largest domain / per_domain_batch_size)`: enough batches to cover the largest domain once.
    Streams restart at every epoch; epoch `e` is seeded by `(seed, e, crc32(domain id))`. Call
    `set_epoch` before each epoch (the `transformers` Trainer and `accelerate` do it through the
    DataLoader) to get a different order per epoch; the same `(seed, epoch)` always gives the same batches.

    **Batch layout.** Within a batch, examples are grouped by domain in the order of the sorted domain ids,
    `per_domain_batch_size` each.

    **Several processes.** Under the `transformers` Trainer / `accelerate`, `accelerate` shards batch samplers
    across processes (whole batches per process).

    Args:
        domains (`Sequence[int]`): Domain id of every example of the dataset (e.g.
            `hf_bigdrop.data.domain_ids`).
        per_domain_batch_size (`int`): Examples of each domain per batch.
        seed (`int`, *optional*, defaults to `0`): Sampling seed.
        num_batches (`int | None`, *optional*, defaults to `None`): Batches per epoch (see above).

    Example:

    ```python
    >>> from torch.utils.data import DataLoader
    >>> from hf_bigdrop.data import DomainBalancedBatchSampler, domain_ids
    >>> sampler = DomainBalancedBatchSampler(domain_ids(train), per_domain_batch_size=32, seed=0)
    >>> loader = DataLoader(train, batch_sampler=sampler, collate_fn=collate_fn, num_workers=2)
    ```
    """

    def __init__(
        self,
        domains: Sequence[int],
        per_domain_batch_size: int,
        *,
        seed: int = 0,
        num_batches: int | None = None,
    ) -> None:
        domains = np.asarray(domains)
        if domains.ndim != 1 or (len(domains) and not np.issubdtype(domains.dtype, np.integer)):
            raise ValueError("domains must be a 1-D sequence of integer domain ids, one per example.")
        if not isinstance(per_domain_batch_size, int) or per_domain_batch_size < 1:
            raise ValueError(
                f"per_domain_batch_size must be a positive integer, got {per_domain_batch_size!r}."
            )
        if num_batches is not None and (not isinstance(num_batches, int) or num_batches < 1):
            raise ValueError(f"num_batches must be a positive integer or None, got {num_batches!r}.")
        present = sorted(int(d) for d in np.unique(domains))
        if not present:
            raise ValueError("No domain to sample from: the dataset is empty.")
        self.per_domain_batch_size = per_domain_batch_size
        self.seed = int(seed)
        self.epoch = 0
        self.domain_order = present
        self._indices = {d: np.flatnonzero(domains == d) for d in present}
        largest = max(len(idx) for idx in self._indices.values())
        self.num_batches = (
            num_batches if num_batches is not None else math.ceil(largest / per_domain_batch_size)
        )

    @classmethod
    def from_dataset(cls, dataset, per_domain_batch_size: int, **kwargs) -> DomainBalancedBatchSampler:
        """Builds the sampler from a split's `domain` column (no image is decoded).

        Args:
            dataset (`datasets.Dataset`): A split of `load_domain_dataset`.
            per_domain_batch_size (`int`): Examples of each domain per batch.
            **kwargs: The other arguments of `DomainBalancedBatchSampler`.

        Returns:
            `DomainBalancedBatchSampler`: The sampler.
        """
        return cls(domain_ids(dataset), per_domain_batch_size, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch, which seeds this epoch's streams (call it before iterating)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches

    def _stream(self, domain: int) -> Iterator[np.ndarray]:
        """Endless chunks of `per_domain_batch_size` indices of one domain."""
        rng = np.random.default_rng([self.seed, self.epoch, zlib.crc32(str(domain).encode())])
        indices = self._indices[domain]
        buffer = np.empty(0, dtype=np.int64)
        while True:
            while len(buffer) < self.per_domain_batch_size:
                buffer = np.concatenate([buffer, rng.permutation(indices)])
            yield buffer[: self.per_domain_batch_size]
            buffer = buffer[self.per_domain_batch_size :]

    def __iter__(self) -> Iterator[list[int]]:
        streams = [self._stream(d) for d in self.domain_order]
        for _ in range(self.num_batches):
            yield [int(i) for stream in streams for i in next(stream)]


class SeededBatchSampler(Sampler[list[tuple[int, int]]]):
    """Gives every batch of a batch sampler its own augmentation seed, derived from `(seed, epoch, batch)`.

    Batches become lists of `(index, batch_seed)` pairs; `SeededDataset` seeds the random
    augmentation with `batch_seed` while it loads the batch. The augmentation of batch `b` then depends
    only on `(seed, epoch, b)`: not on the global random state, the number of DataLoader workers, or what
    ran before. That is what makes a resumed run exact: the Trainer skips the batches already trained,
    and the first batch after the checkpoint is augmented as in the uninterrupted run.

    Args:
        batch_sampler (`Sampler[list[int]]`): Yields lists of dataset indices (e.g.
            `DomainBalancedBatchSampler`); its `set_epoch` is forwarded.
        seed (`int`, *optional*, defaults to `0`): Augmentation seed.
    """

    def __init__(self, batch_sampler: Sampler[list[int]], seed: int = 0) -> None:
        self.batch_sampler = batch_sampler
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch of this sampler and of the wrapped one."""
        self.epoch = int(epoch)
        if hasattr(self.batch_sampler, "set_epoch"):
            self.batch_sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for number, batch in enumerate(self.batch_sampler):
            batch_seed = int(np.random.SeedSequence([self.seed, self.epoch, number]).generate_state(1)[0])
            yield [(int(index), batch_seed) for index in batch]


class SeededDataset(TorchDataset):
    """Loads the batches of a `SeededBatchSampler` with the batch's seed as torch's random state.

    The wrapped dataset's transform (e.g. `apply_transforms`) draws its random
    augmentation from torch's global generator; it is forked, so the caller's random state is untouched.

    Args:
        dataset (`datasets.Dataset` or `torch.utils.data.Dataset`): The transformed training split.
    """

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence[tuple[int, int]]) -> list:
        indices = [int(index) for index, _ in keys]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(keys[0][1])
            if hasattr(self.dataset, "__getitems__"):
                return list(self.dataset.__getitems__(indices))
            return [self.dataset[index] for index in indices]
