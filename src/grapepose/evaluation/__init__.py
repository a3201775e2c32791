"""OKS AP/AR evaluation of keypoint results (COCO, CrowdPose, OCHuman) with faster-coco-eval.

Example:
    >>> from grapepose.evaluation import evaluate_results, format_metrics_table
    >>> metrics = evaluate_results("results.json", "crowdpose_test.json")   # kind detected: crowdpose
    >>> print(format_metrics_table(metrics, "grape_w32"))
"""

from grapepose.evaluation.coco_eval import (
    KINDS,
    METRICS,
    check_ground_truth,
    detect_kind,
    evaluate_results,
    load_annotation,
    load_results,
)
from grapepose.evaluation.images import AnnotatedImage, annotated_images, ground_truth_images, read_image_as_stored
from grapepose.evaluation.table import format_metrics_table

__all__ = [
    "KINDS", "METRICS", "AnnotatedImage", "annotated_images", "check_ground_truth", "detect_kind", "evaluate_results",
    "format_metrics_table", "ground_truth_images", "load_annotation", "load_results", "read_image_as_stored",
]  # fmt: skip
