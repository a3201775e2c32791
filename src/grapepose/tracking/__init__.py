"""Stable person ids across video frames (OKS matching of consecutive frames)."""

from grapepose.tracking.assignment import linear_assignment
from grapepose.tracking.tracker import PoseTracker, pose_oks

__all__ = ["PoseTracker", "pose_oks", "linear_assignment"]
