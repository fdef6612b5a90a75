"""Train the plate head and export it to ONNX: `python -m services.recognition.training.train [--dev FOLDER]`.

The head reads, at each time step, PP-OCR's features and PP-OCR's own scores folded onto the plate alphabet, and
answers blank + A-Z/0-9 scores (CTC). Its last layer starts at zero on top of a skip connection from PP-OCR's
scores, so before training it decodes exactly like PP-OCR; training teaches it the plate fonts and look-alikes on
synthetic plates (`synth.py`) and, with `--dev`, on every other photo of a labelled folder (the rest are left out
and listed in `plate_head.json`, so `alpr eval-ocr` reports only on photos the head never saw).

Needs PyTorch (`pip install torch==2.13.0`, CPU build); the service itself runs the exported ONNX file only.
Seeded: the same command on the same versions writes the same weights.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from services.recognition.decoding import PLATE_ALPHABET
from services.recognition.engine import PLATE_HEAD, RapidOcrEngine
from services.recognition.evaluation import labelled_photos
from services.recognition.training.dataset import Example, encode, load, real_crops, save, synthetic_crops


def build(args: argparse.Namespace, work: Path) -> tuple[list[Example], list[str]]:
    engine = RapidOcrEngine(threads=args.threads, features=True)
    synthetic = work / f"synthetic-{args.synthetic}-{args.seed}.npz"
    if not synthetic.exists():
        started = time.perf_counter()
        save(encode(engine, synthetic_crops(args.synthetic, args.seed)), synthetic)
        print(f"synthetic: {args.synthetic} lines in {time.perf_counter() - started:.0f} s")  # noqa: T201
    examples = load(synthetic)
    trained_on: list[str] = []
    if args.dev:
        photos = [photo.name for photo, _ in labelled_photos(Path(args.dev))]
        trained_on = photos[args.fold :: 2]  # every other photo by name; the others stay unseen for evaluation
        real = work / f"real-{args.fold}-{args.copies}-{args.seed}.npz"
        if not real.exists():
            save(encode(engine, real_crops(engine, Path(args.dev), set(trained_on), args.copies, args.seed)), real)
        examples += load(real)
    return examples, trained_on


def train(examples: list[Example], args: argparse.Namespace):  # type: ignore[no-untyped-def]
    import torch
    from torch import nn

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    index = {ch: i + 1 for i, ch in enumerate(PLATE_ALPHABET)}  # 0 is the CTC blank

    class PlateHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout(args.dropout)
            self.inp = nn.Linear(120 + 38, 128)
            self.lstm = nn.LSTM(128, 96, batch_first=True, bidirectional=True)
            self.out = nn.Linear(192, 1 + len(PLATE_ALPHABET))
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

        def forward(self, features: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
            hidden = torch.relu(self.inp(self.drop(torch.cat([features, probs], dim=-1))))
            hidden, _ = self.lstm(hidden)
            # PP-OCR's own scores (blank and the plate characters, not "other") pass straight through.
            skip = torch.cat([probs[..., :1], probs[..., 2:]], dim=-1)
            return torch.softmax(self.out(hidden) + skip, dim=-1)

    model = PlateHead()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True)
    order = list(range(len(examples)))
    rng = random.Random(args.seed)
    steps = args.epochs * ((len(order) + args.batch - 1) // args.batch)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)
    for epoch in range(args.epochs):
        rng.shuffle(order)
        total, started = 0.0, time.perf_counter()
        for start in range(0, len(order), args.batch):
            batch = [examples[i] for i in order[start : start + args.batch]]
            lengths = torch.tensor([len(e.features) for e in batch])
            width = int(lengths.max())
            feats = torch.zeros(len(batch), width, 120)
            probs = torch.full((len(batch), width, 38), float(np.log(1e-6)))
            probs[:, :, 0] = 0.0  # padding reads as blank
            for i, e in enumerate(batch):
                feats[i, : len(e.features)] = torch.from_numpy(e.features.astype(np.float32))
                probs[i, : len(e.folded)] = torch.from_numpy(e.folded.astype(np.float32))
            targets = torch.tensor([index[ch] for e in batch for ch in e.label])
            target_lengths = torch.tensor([len(e.label) for e in batch])
            out = model(feats, probs)
            log_probs = torch.log(out.clamp_min(1e-8)).transpose(0, 1)
            loss = ctc(log_probs, targets, lengths, target_lengths)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(batch)
        print(f"epoch {epoch + 1}: loss {total / len(order):.4f} ({time.perf_counter() - started:.0f} s)")  # noqa: T201
    return model


def export(model, path: Path) -> None:  # type: ignore[no-untyped-def]
    import torch

    model.eval()
    features, probs = torch.zeros(1, 40, 120), torch.zeros(1, 40, 38)
    torch.onnx.export(
        model,
        (features, probs),
        str(path),
        input_names=["features", "probs"],
        output_names=["plate"],
        dynamic_axes={"features": {1: "steps"}, "probs": {1: "steps"}, "plate": {1: "steps"}},
        opset_version=17,
        dynamo=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", help="labelled photos (`NAME.jpg` + `NAME.txt`); every other one is trained on")
    parser.add_argument("--fold", type=int, choices=(0, 1), default=0, help="train on the even (0) or odd (1) photos")
    parser.add_argument("--synthetic", type=int, default=20000, help="synthetic plate lines")
    parser.add_argument("--copies", type=int, default=12, help="augmented copies of each real crop")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=0.0, help="on the head's inputs, while training")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default="var/plate-head", help="where the encoded training lines are cached")
    parser.add_argument("--out", default=str(PLATE_HEAD))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    examples, trained_on = build(args, work)
    print(f"training on {len(examples)} lines")  # noqa: T201
    model = train(examples, args)
    out = Path(args.out)
    export(model, out)
    card = {
        "trained_on": trained_on,  # photo names the head has seen: `alpr eval-ocr` leaves them out
        "fold": args.fold,
        "synthetic": args.synthetic,
        "copies": args.copies,
        "epochs": args.epochs,
        "dropout": args.dropout,
        "seed": args.seed,
        "lines": len(examples),
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")  # noqa: T201


if __name__ == "__main__":
    main()
