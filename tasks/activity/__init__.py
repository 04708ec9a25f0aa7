"""Video activity recognition: clip data, clip and causal streaming models, pose path, events.

Modules: ``clips`` (datasets of videos / segments / frame folders, clip sampling, decoding,
clip-consistent augmentation), ``models`` (per-frame backbone + temporal head; causal
streaming classifier with carried state and TFLite export), ``events`` (per-window scores to
labelled segments), ``pose`` (MoveNet MultiPose keypoints, tracks, keypoint-sequence
classifier), ``task`` (the ``activity`` task plugin).
"""

from visionsuite_tasks.activity.task import ActivityConfig, ActivityTask

__all__ = ["ActivityConfig", "ActivityTask"]
