"""visionsuite: train, evaluate, export and run Keras CNNs on images, volumes and live video.

The command line (`visionsuite ...`) is a thin layer over this Python API. Importing the
package is cheap: TensorFlow is imported only by the modules that need it.
"""

__version__ = "0.1.0"
