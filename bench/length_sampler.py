"""Length-grouped batches that resume exactly.

transformers' ``LengthGroupedSampler`` (``group_by_length``) draws its shuffle from torch's global RNG
when iteration starts, so a run resumed from a checkpoint would see other batches than the run it
continues. Here the shuffle is a function of (seed, epoch) only, like accelerate's seedable sampler.
"""

from __future__ import annotations

import torch
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler


class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
    """``LengthGroupedSampler`` whose order depends on ``seed + epoch`` (Trainer calls ``set_epoch``)."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        super().__init__(batch_size, lengths=lengths)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()


class LengthGroupedTrainer(Trainer):
    """Trainer whose ``group_by_length`` sampler is :class:`EpochSeededLengthGroupedSampler`."""

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not self.args.group_by_length or dataset is None:
            return super()._get_train_sampler(train_dataset)
        lengths = [len(ids) for ids in dataset["input_ids"]]  # one column read, not one row at a time
        batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return EpochSeededLengthGroupedSampler(batch, lengths, seed)
