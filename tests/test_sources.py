"""Image sources: folders with and without splits, unlabelled folders, CSV lists, and item identity."""
import os

import numpy as np
import pytest

from featurepipe.datasets import from_csv, open_dataset
from helpers import write_rgb


def test_class_folders_with_splits(image_folder):
    ds = open_dataset(image_folder)
    assert len(ds) == 36 and ds.classes == ["blue", "green", "red"]
    assert ds.splits.count("train") == 24
    train = ds.subset("train")
    assert len(train) == 24 and set(train.splits) == {"train"}
    assert all(i.startswith("train") for i in train.ids)
    assert ds.labels[ds.ids.index(os.path.join("test", "red", "red_0.jpg"))] == "red"


def test_class_folders_without_splits_ignore_loose_files(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    write_rgb(tmp_path / "a" / "1.png", img)
    write_rgb(tmp_path / "b" / "deep" / "2.png", img)
    (tmp_path / "a" / "notes.txt").write_text("not an image name")
    (tmp_path / "a" / ".hidden.png").write_bytes(b"")
    ds = open_dataset(tmp_path, kind="folder")
    assert ds.ids == ("a/1.png", "b/deep/2.png") and ds.labels == ("a", "b") and ds.splits is None


def test_unlabelled_is_recursive(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    write_rgb(tmp_path / "x.jpg", img)
    write_rgb(tmp_path / "sub" / "y.PNG", img)
    ds = open_dataset(tmp_path)
    assert ds.ids == ("sub/y.PNG", "x.jpg") and ds.labels is None


def test_csv_list(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    write_rgb(tmp_path / "im" / "a.png", img)
    (tmp_path / "list.csv").write_text("path,label\nim/a.png,cat\nim/missing.png,dog\n")
    ds = open_dataset(tmp_path / "list.csv")
    assert ds.labels == ("cat", "dog") and ds.path(0) == tmp_path / "im" / "a.png"
    assert ds.stamps[1] == "missing"  # read later, and recorded in the error ledger then
    (tmp_path / "bad.csv").write_text("only-a-path.png\n")
    with pytest.raises(ValueError, match="row 1 needs path,label"):
        from_csv(tmp_path / "bad.csv")


def test_identity_follows_files(image_folder):
    before = open_dataset(image_folder).identity()
    assert open_dataset(image_folder).identity() == before
    target = image_folder / "train" / "red" / "red_0.jpg"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    touched = open_dataset(image_folder).identity()
    assert touched != before
    write_rgb(image_folder / "train" / "red" / "new.png", np.zeros((4, 4, 3), np.uint8))
    assert open_dataset(image_folder).identity() not in (before, touched)


def test_content_hash_ignores_mtime(image_folder):
    before = open_dataset(image_folder, content_hash=True).identity()
    target = image_folder / "train" / "red" / "red_0.jpg"
    os.utime(target, ns=(0, 0))
    assert open_dataset(image_folder, content_hash=True).identity() == before


def test_missing_folder():
    with pytest.raises(FileNotFoundError, match="not found"):
        open_dataset("/no/such/folder", kind="folder")


def test_csv_with_byte_order_mark(tmp_path):
    write_rgb(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "list.csv").write_text("path,label\na.png,cat\n", encoding="utf-8-sig")
    ds = open_dataset(tmp_path / "list.csv")
    assert ds.ids == ("a.png",) and ds.labels == ("cat",)
