"""Fine-tune the second reader on synthetic plates: `python -m services.recognition.training.second`.

The shipped ONNX graph (fast-plate-ocr's CCT-XS v2, MIT) is converted to PyTorch with `onnx2torch`, every weight
made trainable, and trained on synthetic whole-plate crops (`plates.py`: the state format tables, OpenCV's Hershey
fonts, no photo) with a small learning rate: cross-entropy on the plate's ten slots, and the region head kept where
it was by matching the untouched model's region answer (KL) on the same crops, since arbitration reads it and
synthetic plates would otherwise teach it that everything is a US plate. Exported back to ONNX with the same
signature (`plates.check_signature`). Seeded: the same command on the same versions writes the same weights.

With `--photos FOLDER --fold A|B` it trains on real crops of that fold's labelled photos instead (`real.py`, each
cut many times with jitter and augmentation), with `--samples N` synthetic crops mixed in (none by default then):
measured cross-fold with `alpr eval-ocr FOLDER --second-reader-weights-fold` (the model trained on one fold reads
the other), and not adopted (docs/recognition-27.md).

Needs PyTorch and onnx2torch (`make train-ocr MODEL=second-reader` installs them in .venv-train).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

from services.recognition.evaluation import FOLDS
from services.recognition.second_reader import ALPHABET, WEIGHTS, sha256_of
from services.recognition.training.plates import check_signature, make
from services.recognition.training.real import make_real


def convert(path: Path) -> Any:
    """The ONNX graph as a trainable torch module (its constant weights turned into parameters)."""
    import torch

    if "torchvision" not in sys.modules:
        # onnx2torch imports torchvision for its NMS and RoIAlign converters only, which this graph has none of;
        # PyPI's torchvision is a CUDA build whose ops do not load beside the CPU torch wheel.
        vision = types.ModuleType("torchvision")
        vision.ops = types.ModuleType("torchvision.ops")  # type: ignore[attr-defined]
        vision.ops.nms = vision.ops.batched_nms = vision.ops.roi_align = None  # type: ignore[attr-defined]
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = vision, vision.ops  # type: ignore[attr-defined]
    import onnx2torch

    model = onnx2torch.convert(str(path))
    for module in model.modules():
        for name, buffer in list(module._buffers.items()):
            if buffer is not None and buffer.is_floating_point() and buffer.numel() > 1:
                del module._buffers[name]
                module.register_parameter(name, torch.nn.Parameter(buffer.clone()))
    return model


def train(model: Any, images: np.ndarray, targets: np.ndarray, args: argparse.Namespace) -> Any:
    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    if args.head_only:
        # The slots' classifier alone: the only weights 37 wide (96×37 and its bias; onnx2torch drops the names).
        for p in model.parameters():
            p.requires_grad_(p.shape[-1] == len(ALPHABET))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    rng = np.random.default_rng(args.seed)
    per_epoch = (len(images) + args.batch - 1) // args.batch
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.epochs * per_epoch)
    model.train()
    for epoch in range(args.epochs):
        order = rng.permutation(len(images))
        total, started = 0.0, time.perf_counter()
        for start in range(0, len(order), args.batch):
            idx = order[start : start + args.batch]
            x = torch.from_numpy(images[idx])
            y = torch.from_numpy(targets[idx])
            plate, region = model(x)  # probabilities (the graph ends in softmax)
            with torch.no_grad():
                _, region_before = teacher(x)
            log_plate = torch.log(plate.clamp_min(1e-8)).reshape(-1, plate.shape[-1])
            loss = torch.nn.functional.nll_loss(log_plate, y.reshape(-1))
            drift = region_before * (torch.log(region_before.clamp_min(1e-8)) - torch.log(region.clamp_min(1e-8)))
            loss = loss + args.region_weight * drift.sum(dim=-1).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
        print(f"epoch {epoch + 1}: loss {total / len(images):.4f} ({time.perf_counter() - started:.0f} s)")  # noqa: T201
    return model.eval()


def export(model: Any, path: Path) -> None:
    import torch

    example = torch.zeros(1, 64, 128, 3, dtype=torch.uint8)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["input"],
        output_names=["plate", "region"],
        dynamic_axes={"input": {0: "batch"}, "plate": {0: "batch"}, "region": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    check_signature(path)


def exact(path: Path, images: np.ndarray, labels: list[str]) -> float:
    """Share of synthetic crops a model file reads exactly (through the service's own reader, any sum accepted)."""
    import cv2

    from services.recognition.second_reader import PlateReader

    reader = PlateReader(path, expected=sha256_of(path))
    reads = []
    for start in range(0, len(images), 64):
        reads += reader.read([cv2.cvtColor(im, cv2.COLOR_RGB2BGR) for im in images[start : start + 64]])
    return float(np.mean([r.text == t for r, t in zip(reads, labels, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=None, help="synthetic training crops (5,000; 0 with --photos)")
    parser.add_argument("--photos", default=None, help="labelled photos (NAME.jpg + NAME.txt) to train on, one fold")
    parser.add_argument(
        "--fold", choices=FOLDS, default=None, help="with --photos: the fold trained on (evaluation.py)"
    )
    parser.add_argument("--per-photo", type=int, default=40, help="with --photos: augmented crops of each photo")
    parser.add_argument("--check", type=int, default=500, help="synthetic crops of another seed, to report on")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--region-weight", type=float, default=1.0, help="weight of keeping the region head's answer")
    parser.add_argument("--head-only", action="store_true", help="train the slots' last layer only (the rest frozen)")
    parser.add_argument("--font", action="append", default=[], help="a TrueType font for half the serials (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", default="var/second-reader", help="where the drawn crops are cached")
    parser.add_argument("--weights", default=str(WEIGHTS), help="the model to start from")
    parser.add_argument("--out", default="var/second-reader/cct_xs_v2_global_finetuned.onnx")
    args = parser.parse_args()
    if (args.photos is None) != (args.fold is None):
        parser.error("--photos and --fold go together")
    if args.samples is None:
        args.samples = 0 if args.photos else 5000
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sets = {}
    for name, count, seed in (("train", args.samples, args.seed), ("check", args.check, args.seed + 1_000_003)):
        if count == 0:
            continue
        fonts = tuple(Path(f) for f in args.font)
        cache = work / f"{name}-{count}-{seed}{''.join('-' + f.stem for f in fonts)}.npz"
        if not cache.exists():
            started = time.perf_counter()
            images, targets, labels = make(count, seed, fonts)
            np.savez(cache, images=images, targets=targets, labels=np.array(labels))
            print(f"{name}: {count} crops drawn in {time.perf_counter() - started:.0f} s")  # noqa: T201
        data = np.load(cache)
        sets[name] = (data["images"], data["targets"], [str(t) for t in data["labels"]])
    photos: list[str] = []
    if args.photos:
        images, targets, labels, photos = make_real(Path(args.photos), args.fold, args.per_photo, args.seed)
        print(f"fold {args.fold}: {len(photos)} photos, {len(images)} crops")  # noqa: T201
        # The photos' plain cuts (the first of each photo's crops), to say how well the model learnt them.
        sets["fold"] = (images[:: args.per_photo], targets[:: args.per_photo], labels[:: args.per_photo])
        if "train" in sets:
            images = np.concatenate([images, sets["train"][0]])
            targets = np.concatenate([targets, sets["train"][1]])
            labels = labels + sets["train"][2]
        sets["train"] = (images, targets, labels)
    model = train(convert(Path(args.weights)), sets["train"][0], sets["train"][1], args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    export(model, out)
    checks = {}
    for name in ("check", "fold"):
        if name in sets:
            images, _, labels = sets[name]
            checks[name] = (exact(Path(args.weights), images, labels), exact(out, images, labels), len(labels))
    card = {
        "base": Path(args.weights).name,
        "base_sha256": sha256_of(Path(args.weights)),
        "sha256": sha256_of(out),
        "samples": args.samples,
        "epochs": args.epochs,
        "lr": args.lr,
        "region_weight": args.region_weight,
        "head_only": args.head_only,
        "fonts": [Path(f).name for f in args.font],
        "seed": args.seed,
        "photos": Path(args.photos).name if args.photos else None,
        "fold": args.fold,
        "per_photo": args.per_photo if args.photos else 0,
        "trained_on": photos,  # `alpr eval-ocr --second-reader-weights-fold` refuses to measure these with it
    }
    for name, key in (("check", "synthetic_check_exact"), ("fold", "trained_fold_exact")):
        if name in checks:
            before, after, crops = checks[name]
            card[key] = {"before": round(before, 4), "after": round(after, 4), "crops": crops}
    out.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps(card))  # noqa: T201


if __name__ == "__main__":
    main()
