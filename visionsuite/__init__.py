"""visionsuite: train, evaluate, export and run Keras CNNs on images, volumes and live video.

The command line (`visionsuite ...`) is a thin layer over this Python API. Importing the
package is cheap: TensorFlow is imported only by the modules that need it.

    >>> import visionsuite
    >>> for result in visionsuite.run("classification", "video.mp4",
    ...                               model="imagenet:efficientnet_lite0"):
    ...     print(result.index, result.record["label"])
"""

__version__ = "0.1.0"


def run(task, source, **options):
    """Run ``task`` on ``source`` (camera index, video file, URL, image folder, or a list of
    them) and return a :class:`~visionsuite.streams.Stream` to iterate for results.
    See :func:`visionsuite.streams.pipeline.run` for the options."""
    from visionsuite.streams.pipeline import run as _run

    return _run(task, source, **options)
