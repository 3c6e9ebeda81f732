"""Train on an fsl dataset in one process: a shuffled DataLoader whose workers decode the frames.

    python examples/single_gpu.py FSL_DATASET [--padding-free] [--epochs 1]

FSL_DATASET is an owa_fsl dataset saved with owa_builders.save_to_disk: its rows, the recordings' root (where
frames are decoded from) and the pad and image token ids its labels mask. Runs on a GPU when there is one,
else on CPU.
"""

import argparse
import time

import torch
from torch.utils.data import DataLoader
from toy_model import ToyLanguageModel

from owa_builders import FslCollator, load_from_disk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--split", default="train")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--padding-free", action="store_true", help="one flattened sequence per batch")
    parser.add_argument("--sequences", choices=("rows", "events"), default="rows",
                        help="padding-free: restart positions at every row or every event")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    dataset = load_from_disk(args.dataset)[args.split]
    dataset.auto_set_transform(stage="fsl", load_images=True)  # frames are decoded when rows are read
    collator = FslCollator.from_dataset(dataset, padding_free=args.padding_free, sequences=args.sequences)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.num_workers,
                        collate_fn=collator, pin_memory=device.type == "cuda")

    model = ToyLanguageModel().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    started, frames, steps = time.perf_counter(), 0, 0
    for epoch in range(args.epochs):
        for batch in loader:
            loss = model(batch["input_ids"].to(device), batch["labels"].to(device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            frames += sum(len(images) for images in batch["images"])
            steps += 1
        print(f"epoch {epoch}: {steps} steps, loss {loss.item():.3f}")
    seconds = time.perf_counter() - started
    rows = len(dataset) * args.epochs
    print(f"{rows} rows, {frames} frames in {seconds:.1f} s ({frames / seconds:.0f} frames/s)")


if __name__ == "__main__":
    main()
