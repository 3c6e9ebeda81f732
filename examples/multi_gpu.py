"""Data-parallel training on an fsl dataset with torch DDP: each rank reads its own part of the rows.

    torchrun --nproc-per-node 2 examples/multi_gpu.py FSL_DATASET

Rows are dealt to ranks round-robin (rank r reads rows r, r + world size, ...) and each rank shuffles
its part every epoch, so every row is read by exactly one rank; DistributedSampler would instead repeat
rows to even out the parts. Parts may differ by a row: DDP's join() lets a rank that runs out of batches
shadow the others' gradient sync. NCCL on GPUs, gloo on CPU. At the end rank 0 prints which rows each
rank read.
"""

import argparse
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Subset
from toy_model import ToyLanguageModel

from owa_builders import FslCollator, load_from_disk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--split", default="train")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()

    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()

    dataset = load_from_disk(args.dataset)[args.split]
    dataset.auto_set_transform(stage="fsl", load_images=True)
    my_rows = range(rank, len(dataset), world_size)
    loader = DataLoader(Subset(dataset, my_rows), batch_size=args.batch_size, shuffle=True,
                        num_workers=args.num_workers, collate_fn=FslCollator.from_dataset(dataset))

    model = DistributedDataParallel(ToyLanguageModel().to(device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rows_read = 0
    for epoch in range(args.epochs):
        with model.join():  # parts of different sizes: ranks that finish early keep the collectives going
            for batch in loader:
                loss = model(batch["input_ids"].to(device), batch["labels"].to(device))
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                rows_read += len(batch["input_ids"])
        print(f"rank {rank} epoch {epoch}: loss {loss.item():.3f}")
    if rows_read != len(my_rows) * args.epochs:
        raise RuntimeError(f"rank {rank} read {rows_read} rows, expected {len(my_rows) * args.epochs}")

    parts = [None] * world_size
    dist.all_gather_object(parts, list(my_rows))
    if rank == 0:
        for other_rank, rows in enumerate(parts):
            print(f"rank {other_rank} read rows {rows}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
