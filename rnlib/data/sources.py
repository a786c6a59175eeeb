"""Where images and masks come from: the offline Shapes dataset, PASCAL VOC 2012, Oxford-IIIT
Pet, any Hugging Face dataset with an image and a mask column, or a folder of files.

Every source yields ``(PIL RGB image, uint8 label array)`` pairs, knows its ``classes`` and
``palette`` (for reports and pictures), and can say what item ``i`` is (a file name or a
dataset row), so that a corrupt file is reported by name. Downloads go through torchvision
(VOC, Pet) or the Hugging Face hub; reading never downloads. The data folder is
``$RNLIB_DATA_DIR`` (read when data is loaded), else the checkout's ``data/``.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..memory import GENERATE_BYTES_PER_PIXEL, MAX_IMAGE_PIXELS, available_memory, check_memory
from . import probes
from .generated import generated_indices
from .synthetic import CLASSES, PALETTE, ShapesConfig, make_samples

__all__ = ["Source", "HFSource", "FileSource", "DataError", "shapes", "huggingface", "folder",
           "voc", "pets", "load_source", "data_dir", "dataset_options", "default_palette",
           "SPLITS", "GENERATED", "held_out_size", "shapes_count"]

DATA_ENV = "RNLIB_DATA_DIR"
SPLITS = ("train", "val", "test")
SHAPES_COUNT = 2000  # Shapes' training images unless a run says otherwise
SHAPES_MIN_HELD_OUT = 64


class DataError(ValueError):
    """A sample cannot be used: a corrupt file, a mask of another size, labels out of range.
    The message names the sample and the fix."""


def data_dir() -> Path:
    """``$RNLIB_DATA_DIR``, else the checkout's data/ folder (rnlib installed from a clone, as
    the README does), else ./data; read anew on every call."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    checkout = Path(__file__).resolve().parents[2] / "data"
    return checkout if (checkout / "README.md").exists() else Path("data")


def default_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """PASCAL VOC's colour map, for any number of classes: class ``i``'s bits spread over the
    high bits of R, G and B (0 is black)."""
    colours = []
    for i in range(n):
        r = g = b = 0
        for shift in range(7, -1, -1):
            r |= ((i >> 0) & 1) << shift
            g |= ((i >> 1) & 1) << shift
            b |= ((i >> 2) & 1) << shift
            i >>= 3
        colours.append((r, g, b))
    return tuple(colours)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")


class Source:
    """Base of every source: ``len``, ``[i] -> (image, labels)``, ``describe(i)``, ``classes``
    (empty when the dataset does not name them) and ``palette``."""

    classes: tuple[str, ...] = ()
    name: str = "dataset"
    label_map: np.ndarray | None = None  # mask value -> class index, when they differ
    _palette: tuple[tuple[int, int, int], ...] = ()  # the dataset's own colours, if any

    def _describe_classes(self, classes: Sequence[str], label_map: np.ndarray | None,
                          palette: Sequence[tuple[int, int, int]]) -> None:
        self.classes, self.label_map, self._palette = tuple(classes), label_map, tuple(palette)

    @property
    def palette(self) -> tuple[tuple[int, int, int], ...]:
        return self._palette or default_palette(max(len(self.classes), 256))

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[Image.Image, np.ndarray]:
        raise NotImplementedError

    def describe(self, i: int) -> str:
        return f"item {i} of {self.name}"

    def fingerprint(self) -> str | None:
        """What identifies the data itself, which resuming compares (None: nothing to
        compare, e.g. data generated from its options)."""
        return None


def _open(data: str | Path | bytes, what: str, mode: str | None = None) -> Image.Image:
    """Decode an image fully, or raise an error that names it and says what to do. Only
    regular files are opened (a FIFO would block the run) and only images of at most
    MAX_IMAGE_PIXELS, checked from the header before decoding."""
    try:
        if not isinstance(data, bytes) and not stat.S_ISREG(os.stat(data).st_mode):
            raise DataError(f"{what} is not a regular file (a FIFO, a device or a folder); "
                            f"remove it from the dataset")
        image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        w, h = image.size
        if w * h > MAX_IMAGE_PIXELS:
            raise DataError(f"{what} is {w}x{h} ({w * h / 1e6:.1f} M pixels), more than rnlib "
                            f"reads ({MAX_IMAGE_PIXELS / 1e6:.1f} M, e.g. 4096x4096): it would "
                            f"multiply the run's time and memory; downsize it and its mask")
        image.load()
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{what} does not exist; check the dataset path") from None
    except Exception as err:  # PIL raises several kinds for broken files
        raise DataError(f"cannot read {what}: {err}. The file is corrupt or not an image; "
                        f"download it again or remove it from the dataset") from err
    return image.convert(mode) if mode else image


def _labels(image: Image.Image, label_map: np.ndarray | None) -> np.ndarray:
    """Class indices from a mask image: palette ('P') and grey ('L') masks hold them directly."""
    labels = np.array(image if image.mode in ("P", "L", "I;16", "I") else image.convert("L"))
    labels = labels.astype(np.int64)
    return label_map[labels] if label_map is not None else labels


def hf_datasets():
    """Hugging Face ``datasets``, imported where rnlib first uses it (it takes a second, and
    loads pyarrow), with its progress bars off: one bar per shard clutters notebooks and logs."""
    import datasets

    datasets.disable_progress_bars()
    return datasets


class HFSource(Source):
    """A Hugging Face ``datasets.Dataset`` with an image column and a mask column."""

    IMAGE_COLUMNS = ("image", "img", "pixel_values")
    MASK_COLUMNS = ("mask", "label", "annotation", "segmentation", "semantic_segmentation",
                    "seg", "labels")

    def __init__(self, dataset, name: str, *, image_column: str | None = None,
                 mask_column: str | None = None, classes: Sequence[str] = (),
                 label_map: np.ndarray | None = None,
                 palette: Sequence[tuple[int, int, int]] = ()) -> None:
        self.image_column = image_column or _pick(dataset.column_names, self.IMAGE_COLUMNS,
                                                  "image", name)
        self.mask_column = mask_column or _pick(dataset.column_names, self.MASK_COLUMNS,
                                                "mask", name)
        for column in (self.image_column, self.mask_column):
            dataset = dataset.cast_column(column, hf_datasets().Image(decode=False))
        self.dataset, self.name = dataset, name
        self._describe_classes(classes, label_map, palette)

    def __len__(self) -> int:
        return len(self.dataset)

    def describe(self, i: int) -> str:
        path = self.dataset[i][self.image_column].get("path")
        return f"row {i} of {self.name}" + (f" ({path})" if path else "")

    def __getitem__(self, i: int) -> tuple[Image.Image, np.ndarray]:
        row = self.dataset[i]
        image = _open(_raw(row[self.image_column]), self.describe(i), "RGB")
        mask = _open(_raw(row[self.mask_column]), f"the mask of {self.describe(i)}")
        return image, _labels(mask, self.label_map)


def _raw(cell: dict) -> bytes | str:
    return cell["bytes"] if cell.get("bytes") is not None else cell["path"]


def _pick(columns: Sequence[str], candidates: Sequence[str], what: str, name: str) -> str:
    for c in candidates:
        if c in columns:
            return c
    raise ValueError(f"{name} has no {what} column (columns: {', '.join(columns)}); "
                     f"name it with {what}_column=...")


class FileSource(Source):
    """Pairs of image and mask files given as two lists of paths."""

    def __init__(self, images: Sequence[Path], masks: Sequence[Path], name: str, *,
                 classes: Sequence[str] = (), label_map: np.ndarray | None = None,
                 palette: Sequence[tuple[int, int, int]] = ()) -> None:
        self.images, self.masks, self.name = list(images), list(masks), name
        self._describe_classes(classes, label_map, palette)

    def __len__(self) -> int:
        return len(self.images)

    def describe(self, i: int) -> str:
        return str(self.images[i])

    def fingerprint(self) -> str:
        """A digest of every file's name, size and modification time."""
        digest = hashlib.sha256()
        for path in (*self.images, *self.masks):
            try:
                info = os.stat(path)
                digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
            except OSError:
                digest.update(f"{path}\0missing\n".encode())
        return digest.hexdigest()

    def __getitem__(self, i: int) -> tuple[Image.Image, np.ndarray]:
        image = _open(self.images[i], f"image file {self.images[i]}", "RGB")
        mask = _open(self.masks[i], f"mask file {self.masks[i]}")
        return image, _labels(mask, self.label_map)


def held_out_size(n: int, minimum: int = 1) -> int:
    """The size of each held-out split (val, test) beside ``n`` samples: a tenth of them, at
    least ``minimum``. Every split rnlib makes itself follows it."""
    return max(minimum, n // 10)


def shapes_count(split: str, train_count: int = SHAPES_COUNT) -> int:
    """Shapes' images in ``split`` of a run that trains on ``train_count``: val and test get a
    tenth (:func:`held_out_size`), at least 64 so that their mIoU is not noise."""
    return train_count if split == "train" else held_out_size(train_count, SHAPES_MIN_HELD_OUT)


def _generated(name: str, split: str, count: int, size: int, seed: int,
               root: str | Path | None, make: Callable[[range], tuple[np.ndarray, np.ndarray]],
               classes: Sequence[str], palette: Sequence[tuple[int, int, int]]) -> HFSource:
    """Dataset ``name``, whose images ``make(indices)`` draws, generated once and cached under
    ``root`` (default :func:`data_dir`) as a Hugging Face dataset (Arrow)."""
    datasets = hf_datasets()
    indices = generated_indices(split, count)
    path = Path(root or data_dir()) / name / f"{split}-{count}-{size}px-seed{seed}"
    if not (path / "dataset_info.json").exists():
        check_memory(size * size * (GENERATE_BYTES_PER_PIXEL + 4 * count), available_memory(),
                     f"generating {count} {name} images of {size}x{size}", "lower size or count")
        images, masks = make(indices)
        features = datasets.Features({"image": datasets.Image(), "mask": datasets.Image()})
        ds = datasets.Dataset.from_dict(
            {"image": [_encode(a, "BMP") for a in images],  # noise does not compress: BMP is
             "mask": [_encode(m, "PNG") for m in masks]},   # 10x faster to write than PNG
            features=features)
        _save(ds, path)
    return HFSource(datasets.load_from_disk(str(path)), f"{name}/{path.name}", classes=classes,
                    palette=palette)


def shapes(split: str = "train", *, count: int = SHAPES_COUNT, size: int = 128, seed: int = 0,
           root: str | Path | None = None) -> HFSource:
    """The offline Shapes dataset (rnlib.data.synthetic), generated once and cached under
    ``root`` (default :func:`data_dir`) as a Hugging Face dataset (Arrow). Splits use disjoint
    image indices; ``count`` is the split's own size (a run's: :func:`shapes_count`)."""
    return _generated("shapes", split, count, size, seed, root, lambda ix: make_samples(
        seed, len(ix), ShapesConfig(size=size), start=ix.start), CLASSES, PALETTE)


def _probe(probe: str) -> Callable[..., HFSource]:
    """The loader of dataset ``probe-PROBE`` (:mod:`rnlib.data.probes`), made as Shapes is."""
    def load(split: str = "train", *, count: int = SHAPES_COUNT, size: int = 128,
             seed: int = 0, root: str | Path | None = None) -> HFSource:
        probes.check_options(probe, size, count)
        return _generated(f"probe-{probe}", split, count, size, seed, root, lambda ix: (
            probes.make_samples(probe, seed, len(ix), size, ix.start)),
            probes.CLASSES[probe], probes.PALETTE)
    return load


def _encode(array: np.ndarray, fmt: str) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return {"bytes": buffer.getvalue(), "path": None}


def _save(ds, path: Path) -> None:
    """Write a dataset to ``path`` through a temporary folder of this process's own, renamed
    into place: a crash leaves no half copy, and of two processes that make the same dataset
    at once the first rename wins and the other uses its copy."""
    import shutil
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    except OSError as err:
        raise OSError(f"cannot write the dataset to {path}: {err.strerror or err}; make "
                      f"{path.parent} writable, or choose another data folder (--data-dir)"
                      ) from err
    try:
        ds.save_to_disk(str(tmp))  # progress bars are off: see rnlib/data/__init__.py
        if path.exists() and not (path / "dataset_info.json").exists():
            shutil.rmtree(path, ignore_errors=True)  # a copy made before writes were atomic
        try:
            tmp.rename(path)
        except OSError:
            if not (path / "dataset_info.json").exists():  # not a race lost: a real failure
                raise
    except OSError as err:
        raise OSError(f"cannot write the dataset to {path}: {err.strerror or err}; free space "
                      f"or make {path.parent} writable, then run again") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pool_split(n: int, split: str, what: str) -> list[int]:
    """Indices of ``split`` in a pool of ``n`` samples that has no splits of its own: 80/10/10
    (:func:`_shuffled_split`); ``all`` takes every sample."""
    if split == "all":
        return list(range(n))
    if split not in SPLITS:
        raise ValueError(f"{what} has splits {', '.join(SPLITS)} (and all), got {split!r}")
    if n < 3:
        raise ValueError(f"{what} has {n} samples, too few to split into train, val and test; "
                         f"add images, or make train/ and val/ folders of your own")
    return _shuffled_split(n, split, held_out=("val", "test"))


def _shuffled_split(n: int, split: str, held_out: Sequence[str]) -> list[int]:
    """Sorted indices of ``split`` among ``n`` samples after a fixed shuffle: each split of
    ``held_out`` takes the next :func:`held_out_size` of them in turn, train the rest."""
    order = np.random.default_rng(0).permutation(n).tolist()
    held = held_out_size(n)
    parts = {name: order[i * held:(i + 1) * held] for i, name in enumerate(held_out)}
    parts["train"] = order[len(held_out) * held:]
    return sorted(parts[split])


def huggingface(name_or_path: str, split: str = "train", **columns) -> HFSource:
    """A Hugging Face dataset by hub name (downloads once) or a folder made by
    ``save_to_disk``; ``columns`` may name ``image_column``, ``mask_column`` and ``classes``.
    A dataset without the split (``val`` is also looked up as ``validation``) is split
    80/10/10 (:func:`_pool_split`)."""
    datasets = hf_datasets()
    path = Path(name_or_path)
    ds = datasets.load_from_disk(str(path)) if path.exists() else datasets.load_dataset(
        name_or_path)
    if isinstance(ds, datasets.DatasetDict):
        names = [n for n in (split, "validation" if split == "val" else None) if n in ds]
        if names:
            ds = ds[names[0]]
        elif len(ds) == 1:
            ds = next(iter(ds.values()))
            ds = ds.select(_pool_split(len(ds), split, name_or_path))
        else:
            raise ValueError(f"{name_or_path} has splits {', '.join(ds)}, not {split!r}; "
                             f"choose with val_split=... (--val-split)")
    else:
        ds = ds.select(_pool_split(len(ds), split, name_or_path))
    return HFSource(ds, f"{name_or_path}[{split}]", **columns)


def _read_classes(root: Path) -> tuple[str, ...]:
    """Class names from ``classes.txt`` (one per line, in label order) in ``root`` or above."""
    for folder_ in (root, root.parent):
        if (folder_ / "classes.txt").is_file():
            return tuple(line.strip() for line in (folder_ / "classes.txt").read_text()
                         .splitlines() if line.strip())
    return ()


def folder(root: str | Path, split: str = "train", *, images: str = "images",
           masks: str = "masks", classes: Sequence[str] = ()) -> FileSource:
    """``root/images/NAME.jpg`` with ``root/masks/NAME.png`` (any image suffix), or the same
    under ``root/train``, ``root/val``, ``root/test``. Without split folders the files are
    split 80/10/10 by a fixed shuffle. Class names come from ``classes`` or a ``classes.txt``
    (one name per line, label 0 first)."""
    root = Path(root)
    base = root / split if (root / split).is_dir() else root
    if not (base / images).is_dir():
        raise FileNotFoundError(f"{base / images} is not a folder; a folder dataset holds "
                                f"{images}/ and {masks}/ with files of the same names")

    def pictures(path: Path) -> list[Path]:  # regular files only: reading a FIFO blocks
        return sorted(p for p in path.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                      and p.is_file())

    image_files = pictures(base / images)
    mask_by_stem = {p.stem: p for p in pictures(base / masks)}
    missing = [p.name for p in image_files if p.stem not in mask_by_stem]
    if missing:
        raise FileNotFoundError(f"no mask in {base / masks} for {len(missing)} image(s), first "
                                f"{missing[0]}; masks must share the image's name")
    if base == root:  # one pool: split it
        image_files = [image_files[i] for i in _pool_split(len(image_files), split, str(root))]
    return FileSource(image_files, [mask_by_stem[p.stem] for p in image_files],
                      f"{root}[{split}]", classes=classes or _read_classes(base))


def voc(split: str = "train", *, root: str | Path | None = None,
        download: bool = False) -> FileSource:
    """PASCAL VOC 2012 segmentation (the paper's benchmark; 21 classes, 255 = boundary).

    ``download=True`` fetches and unpacks it through torchvision (2 GB) into ``root``
    (default :func:`data_dir`). VOC's test masks are not public (the paper's test figures come
    from the evaluation server), so its ``test`` split is ``val``, as offline papers report.
    """
    root = Path(root or data_dir())
    split = "val" if split == "test" else split
    if download:
        from torchvision.datasets import VOCSegmentation

        VOCSegmentation(str(root), year="2012", image_set=split, download=True)
    base = root / "VOCdevkit" / "VOC2012"
    ids = _read_ids(base / "ImageSets" / "Segmentation" / f"{split}.txt", "VOC 2012")
    return FileSource([base / "JPEGImages" / f"{i}.jpg" for i in ids],
                      [base / "SegmentationClass" / f"{i}.png" for i in ids],
                      f"VOC2012[{split}]", classes=VOC_CLASSES)


def pets(split: str = "train", *, root: str | Path | None = None,
         download: bool = False) -> FileSource:
    """Oxford-IIIT Pet with trimaps as masks: 0 background, 1 pet, 255 the uncertain border.

    Its ``trainval`` list is split 90/10 into train and val (by a fixed shuffle); ``test`` is
    its own test list. ``download=True`` fetches it through torchvision (800 MB) into ``root``
    (default :func:`data_dir`).
    """
    root = Path(root or data_dir())
    listed = "test" if split == "test" else "trainval"
    if download:
        from torchvision.datasets import OxfordIIITPet

        OxfordIIITPet(str(root), split=listed, target_types="segmentation", download=True)
    base = root / "oxford-iiit-pet"
    ids = [line.split()[0] for line in _read_ids(base / "annotations" / f"{listed}.txt", "Pet")]
    if split != "test":
        ids = [ids[i] for i in _shuffled_split(len(ids), split, held_out=("val",))]
    trimap = np.full(256, 255, np.int64)
    trimap[1], trimap[2] = 1, 0  # 1 = pet, 2 = background, 3 = border (ignored)
    return FileSource([base / "images" / f"{i}.jpg" for i in ids],
                      [base / "annotations" / "trimaps" / f"{i}.png" for i in ids],
                      f"Oxford-IIIT Pet[{split}]", classes=("background", "pet"),
                      label_map=trimap, palette=((0, 0, 0), (230, 25, 75)))


def _read_ids(path: Path, what: str) -> list[str]:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {what} is not in {path.parents[2]}; pass "
                                f"download=True (or --download) or the right --data-dir")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


LOADERS: dict[str, Callable[..., Source]] = {"shapes": shapes, "voc": voc, "pets": pets,
                                             **{f"probe-{p}": _probe(p) for p in probes.PROBES}}
GENERATED = ("shapes", *(f"probe-{p}" for p in probes.PROBES))  # datasets drawn from a seed


def _loader(name: str | None) -> Callable[..., Source]:
    """The loader of dataset ``name``, or a clear error."""
    if not name:  # None (converted weights of another dataset), or "" as convert once wrote
        raise ValueError("no dataset is named (weights converted from a dataset rnlib does not "
                         "load); pass --dataset (dataset=...) with shapes, voc, pets, "
                         "hf:NAME_OR_PATH or a folder with images/ and masks/")
    if name in LOADERS:
        return LOADERS[name]
    if name.startswith("hf:"):
        return huggingface
    if Path(name).is_dir():
        return folder
    raise ValueError(f"unknown dataset {name!r}: pass --dataset (dataset=...) with "
                     f"{', '.join(LOADERS)}, hf:NAME_OR_PATH or a folder with images/ and masks/")


def dataset_options(name: str | None) -> tuple[str, ...]:
    """The options (``data_options``) that dataset ``name`` takes (any other name is taken for
    a folder, whether or not it exists here; None, no dataset, takes none)."""
    import inspect

    if name is None:
        return ()
    if name.startswith("hf:"):
        return ("image_column", "mask_column", "classes")
    loader = LOADERS.get(name, folder)
    return tuple(k for k, p in inspect.signature(loader).parameters.items()
                 if p.kind is p.KEYWORD_ONLY)


def load_source(name: str | None, split: str = "train", **options) -> Source:
    """A source by name: ``shapes``, ``voc``, ``pets``, ``probe-detail`` (``-context``,
    ``-scale``: :mod:`rnlib.data.probes`), ``hf:NAME_OR_PATH``, or a folder path.
    ``options`` go to the loader (:func:`dataset_options`; ``root`` is the data folder of
    shapes, voc and pets)."""
    loader = _loader(name)
    if loader is huggingface:
        return huggingface(name[3:], split, **options)
    if loader is folder:
        return folder(name, split, **options)
    return loader(split=split, **options)
