"""A stand-in for a VLM so that the examples train anywhere: next-token prediction from token embeddings.

It reads what a real model reads from FslCollator's batches (input_ids, labels) and ignores the frames.
To stay small whatever the tokenizer, it hashes token ids into `buckets` (a real model has one output per
vocabulary token). Swap in your model, and pass its image processor to auto_set_transform.
"""

import torch

IGNORE_INDEX = -100


class ToyLanguageModel(torch.nn.Module):
    def __init__(self, buckets: int = 1024, width: int = 32):
        super().__init__()
        self.buckets = buckets
        self.embed = torch.nn.Embedding(buckets, width)
        self.head = torch.nn.Linear(width, buckets)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The mean next-token loss; labels of -100 (padding, image tokens, sequence starts) are skipped."""
        logits = self.head(self.embed(input_ids % self.buckets))
        targets = torch.where(labels == IGNORE_INDEX, labels, labels % self.buckets)
        return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), targets[:, 1:].flatten(),
                                                 ignore_index=IGNORE_INDEX)
