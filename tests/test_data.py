"""Data: the Shapes generator, every source layout on small local copies, joint transforms,
and the errors for bad files and labels."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from rnlib.data import (
    DataError,
    SegmentationDataset,
    check_labels,
    eval_transform,
    load_source,
    train_transform,
)
from rnlib.data.sources import HFSource, folder, pets, shapes, voc
from rnlib.data.synthetic import CLASSES, ShapesConfig, make_sample, make_samples


def test_shapes_are_deterministic_per_seed_and_index():
    a_img, a_mask = make_sample(3, 17)
    b_img, b_mask = make_sample(3, 17)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    assert not np.array_equal(make_sample(4, 17)[0], a_img)
    images, masks = make_samples(3, 2, start=16)
    assert np.array_equal(images[1], a_img)


def test_shapes_hold_every_class_with_small_and_thin_ones_rare():
    _, masks = make_samples(0, 64)
    share = np.bincount(masks.ravel(), minlength=len(CLASSES)) / masks.size
    assert (share > 0).all()
    assert share[3] < 0.03 and share[4] < 0.01  # lines and dots: detail, not area


def test_lines_are_thin():
    """Eroding a line mask with a 3x3 square leaves (almost) nothing: lines are < 4 px wide."""
    _, masks = make_samples(1, 32)
    line = torch.from_numpy((masks == 3).astype(np.float32)).unsqueeze(1)
    eroded = -torch.nn.functional.max_pool2d(-line, 5, 1, 2)  # 5x5 erosion
    assert eroded.sum() <= 0.02 * line.sum()


def test_colour_alone_does_not_tell_the_class():
    """The mean colour of a class changes from image to image (colours are drawn per image)."""
    images, masks = make_samples(2, 40)
    means = np.array([images[i][masks[i] == 1].mean(0) for i in range(40) if (masks[i] == 1).any()])
    assert means.std(0).min() > 25  # in 0..255 units


def test_disc_and_box_share_their_texture():
    image, mask = make_sample(0, 0, ShapesConfig(noise=0.0, max_big=8))
    for _ in range(100):
        if (mask == 1).any() and (mask == 2).any():
            break
        image, mask = make_sample(0, _ + 1, ShapesConfig(noise=0.0, max_big=8))
    disc = {tuple(c) for c in image[mask == 1]}
    box = {tuple(c) for c in image[mask == 2]}
    assert len(disc) <= 2 and disc == box


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return root, shapes("train", count=16, size=32, root=root)


def test_shapes_source_is_a_cached_hf_dataset(tiny_shapes):
    root, source = tiny_shapes
    assert len(source) == 16 and (root / "shapes" / "train-16-32px-seed0" / "dataset_info.json").exists()
    image, labels = source[5]
    expected_image, expected_labels = make_sample(0, 5, ShapesConfig(size=32))
    assert np.array_equal(np.array(image), expected_image)
    assert np.array_equal(labels, expected_labels)
    again = shapes("train", count=16, size=32, root=root)  # from disk, not generated
    assert np.array_equal(np.array(again[5][0]), expected_image)


def test_dataset_items_are_tensors(tiny_shapes):
    _, source = tiny_shapes
    image, mask = SegmentationDataset(source, 5, eval_transform())[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert mask.shape == (32, 32) and mask.dtype == torch.int64
    assert type(image) is torch.Tensor and type(mask) is torch.Tensor


def _write_pair(root, name, size=(20, 16), labels=(0, 1), image_dir="images", mask_dir="masks",
                mask_suffix=".png", image_suffix=".jpg"):
    (root / image_dir).mkdir(parents=True, exist_ok=True)
    (root / mask_dir).mkdir(parents=True, exist_ok=True)
    w, h = size
    rng = np.random.default_rng(len(name))
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / image_dir / f"{name}{image_suffix}")
    mask = np.array(labels, np.uint8)[rng.integers(0, len(labels), (h, w))]
    Image.fromarray(mask, mode="L").save(root / mask_dir / f"{name}{mask_suffix}")
    return mask


def test_folder_source(tmp_path):
    mask = _write_pair(tmp_path, "a")
    _write_pair(tmp_path, "b")
    source = load_source(str(tmp_path), "all")
    assert len(source) == 2
    assert np.array_equal(source[0][1], mask)


def test_a_folder_without_splits_is_split_80_10_10_the_same_way_every_time(tmp_path):
    for i in range(20):
        _write_pair(tmp_path, f"img{i:02d}")
    parts = {s: [p.name for p in folder(tmp_path, s).images] for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    assert sorted(sum(parts.values(), [])) == sorted(p.name for p in folder(tmp_path, "all").images)
    assert parts == {s: [p.name for p in folder(tmp_path, s).images] for s in parts}


def test_split_folders_and_class_names(tmp_path):
    for split in ("train", "val"):
        _write_pair(tmp_path / split, "a")
    (tmp_path / "classes.txt").write_text("sky\nroad\n")
    source = load_source(str(tmp_path), "val")
    assert len(source) == 1 and source.classes == ("sky", "road")
    assert source.palette[:2] == ((0, 0, 0), (128, 0, 0))  # VOC's colour map


def test_a_tiny_folder_cannot_be_split(tmp_path):
    _write_pair(tmp_path, "a")
    with pytest.raises(ValueError, match="too few to split.*train/ and val/"):
        folder(tmp_path, "train")


def test_folder_missing_mask_names_the_image(tmp_path):
    _write_pair(tmp_path, "a")
    (tmp_path / "masks" / "a.png").unlink()
    with pytest.raises(FileNotFoundError, match="a.jpg"):
        folder(tmp_path, "all")


def test_corrupt_image_is_named(tmp_path):
    _write_pair(tmp_path, "a")
    (tmp_path / "images" / "a.jpg").write_bytes(b"not a jpeg at all")
    data = SegmentationDataset(folder(tmp_path, "all"), 2)
    with pytest.raises(DataError, match=r"cannot read image file .*a\.jpg.*corrupt"):
        data[0]


def test_mask_of_another_size_is_an_error(tmp_path):
    _write_pair(tmp_path, "a")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "masks" / "a.png")
    with pytest.raises(ValueError, match=r"a\.jpg.*20x16 but its mask is 5x5"):
        SegmentationDataset(folder(tmp_path, "all"), 2)[0]


def test_labels_out_of_range_are_an_error_but_ignore_is_fine(tmp_path):
    _write_pair(tmp_path, "a", labels=(0, 1, 255))
    assert SegmentationDataset(folder(tmp_path, "all"), 2)[0][1].max() == 255
    _write_pair(tmp_path, "b", labels=(0, 7))
    with pytest.raises(DataError, match=r"b\.jpg: mask holds labels \[7\] but the model has 2 classes"):
        SegmentationDataset(folder(tmp_path, "all"), 2)[1]
    with pytest.raises(DataError, match=r"b\.jpg: mask holds labels \[7\]"):
        check_labels(folder(tmp_path, "all"), 2)  # before training: a spread of masks


def test_empty_dataset_is_an_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(ValueError, match="no samples"):
        SegmentationDataset(folder(tmp_path, "all"), 2)


def test_voc_layout(tmp_path):
    base = tmp_path / "VOCdevkit" / "VOC2012"
    mask = _write_pair(base, "2007_000032", labels=(0, 15, 255), image_dir="JPEGImages",
                       mask_dir="SegmentationClass")
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    (base / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000032\n")
    source = voc("train", root=tmp_path)
    assert len(source) == 1 and source.classes[15] == "person"
    assert np.array_equal(source[0][1], mask)
    with pytest.raises(FileNotFoundError, match="download=True"):
        voc("val", root=tmp_path)


def test_voc_palette_masks_keep_their_indices(tmp_path):
    base = tmp_path / "VOCdevkit" / "VOC2012"
    _write_pair(base, "x", image_dir="JPEGImages", mask_dir="SegmentationClass")
    labels = np.array([[0, 1], [15, 255]], np.uint8).repeat(8, 0).repeat(10, 1)
    palette_mask = Image.fromarray(labels, mode="P")
    palette_mask.putpalette([v for i in range(256) for v in (i, 255 - i, (3 * i) % 256)])
    palette_mask.save(base / "SegmentationClass" / "x.png")
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    (base / "ImageSets" / "Segmentation" / "train.txt").write_text("x\n")
    assert np.array_equal(voc(root=tmp_path)[0][1], labels)


def test_pets_trimaps_become_background_pet_ignore(tmp_path):
    base = tmp_path / "oxford-iiit-pet"
    trimap = _write_pair(base, "Abyssinian_1", labels=(1, 2, 3), mask_dir="annotations/trimaps")
    (base / "annotations" / "trainval.txt").write_text("Abyssinian_1 1 1 1\n")
    labels = pets("val", root=tmp_path)[0][1]  # one image: the val tenth holds it
    assert np.array_equal(labels, np.select([trimap == 1, trimap == 2], [1, 0], 255))


def test_huggingface_dataset_from_disk(tmp_path):
    import datasets

    rng = np.random.default_rng(0)
    ds = datasets.Dataset.from_dict(
        {"img": [Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))],
         "annotation": [Image.fromarray(np.ones((8, 8), np.uint8))]},
        features=datasets.Features({"img": datasets.Image(), "annotation": datasets.Image()}))
    ds.save_to_disk(str(tmp_path / "hf"))
    source = load_source(f"hf:{tmp_path / 'hf'}", "all")
    assert source[0][1].sum() == 64
    with pytest.raises(ValueError, match="no mask column .*mask_column="):
        HFSource(ds.remove_columns("annotation"), "no masks")


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'coco'"):
        load_source("coco")


def test_crop_larger_than_the_image_is_padded_with_ignore():
    torch.manual_seed(0)
    image = tv_tensors.Image(torch.full((3, 10, 12), 200, dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.ones(10, 12, dtype=torch.int64))
    out_image, out_mask = train_transform(32, scale=(1.0, 1.0), flip=False)(image, mask)
    assert out_image.shape == (3, 32, 32) and out_mask.shape == (32, 32)
    assert set(out_mask.unique().tolist()) <= {1, 255} and (out_mask == 255).any()


def test_transforms_keep_labels_and_ignore_exact():
    """Random scale, crop and flip never invent labels: nearest-neighbour on masks."""
    labels = torch.tensor([0, 3, 255])[torch.randint(0, 3, (40, 50))]
    image = tv_tensors.Image(torch.randint(0, 255, (3, 40, 50), dtype=torch.uint8))
    t = train_transform(24)
    for seed in range(10):
        torch.manual_seed(seed)
        _, out = t(image, tv_tensors.Mask(labels))
        assert set(out.unique().tolist()) <= {0, 3, 255}
