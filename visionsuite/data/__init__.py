"""Generic data layer shared by every task.

* :mod:`visionsuite.data.images` -- image decoding to RGB ``uint8``, corrupt / truncated file
  detection, folder scanning with a list of skipped files;
* :mod:`visionsuite.data.readers` -- folder / CSV helpers that task readers build on;
* :mod:`visionsuite.data.augment` -- Albumentations builders;
* :mod:`visionsuite.data.pipeline` -- :func:`make_tf_dataset`, a ``tf.data`` pipeline from a
  :class:`~visionsuite.task.Dataset` (imports TensorFlow when called).
"""
