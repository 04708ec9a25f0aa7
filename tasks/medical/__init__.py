"""Medical imaging task: DICOM/NIfTI volumes with exact geometry, 3D segmentation, sliding-window
inference, Dice/HD95 metrics and a pretrained brain-extraction model.

Modules: ``volume`` (the Volume dataclass and its conventions), ``readers`` (NIfTI, DICOM, 2D
images and masks; NIfTI writer), ``cases`` (case tables, patient-grouped splits),
``preprocess`` (reorientation, resampling, windows, normalisation, patches, augmentation),
``models`` (3D U-Net, Dice + cross-entropy), ``inference`` (memory-bounded sliding window),
``metrics`` (Dice, HD95, ASD in mm), ``pretrained`` (deepbrain brain extraction), ``render``
(three orthogonal slices with a mask overlaid), ``synthetic`` (DICOM series and tiny NIfTI
datasets with known geometry), ``stream`` (volume source, sliding-window state, NIfTI sink)
and ``task`` (:class:`MedicalTask`, the task plugin). See README.md beside this file.
"""

from visionsuite_tasks.medical.task import MedicalConfig, MedicalPrediction, MedicalTask

__all__ = ["MedicalConfig", "MedicalPrediction", "MedicalTask"]
