"""ImageBatches (strategies.batches) yields rows in the order asked."""

from __future__ import annotations

import numpy as np

from strategies.batches import ImageBatches, build_augmentation


def numbered_images(n: int, size: int = 6) -> np.ndarray:
    """Image i is filled with the value i (so a pixel names its row)."""
    return np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, size, size, 3), np.uint8)


def test_batches_come_in_the_order_of_rows():
    rows = np.array([5, 0, 3, 1, 4])
    batches = ImageBatches(numbered_images(6), rows * 10, rows=rows, batch_size=3)
    seen = [batches[i] for i in range(len(batches))]
    assert [int(v) for x, _ in seen for v in x[:, 0, 0, 0]] == rows.tolist()
    assert [int(v) for _, y in seen for v in y] == (rows * 10).tolist()


def test_augmentation_of_an_image_does_not_depend_on_the_asked_order():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (8, 12, 12, 3), dtype=np.uint8)
    rows = np.array([6, 1, 7, 0, 3, 5, 2, 4])

    def augmented(order):
        aug = build_augmentation(flip=True, translate=0.2, seed=3)
        return ImageBatches(images, np.zeros(len(order)), rows=order, batch_size=8,
                            augmentation=aug)[0][0]

    ascending = augmented(np.sort(rows))
    np.testing.assert_array_equal(augmented(rows), ascending[rows])


def test_shuffled_batches_list_their_rows_in_ascending_order():
    batches = ImageBatches(numbered_images(50), np.zeros(50), batch_size=8, shuffle=True, seed=1)
    parts = [batches[i][0][:, 0, 0, 0].astype(int) for i in range(len(batches))]
    assert all(list(p) == sorted(p) for p in parts)
    assert sorted(np.concatenate(parts)) == list(range(50))
    assert list(np.concatenate(parts)) != list(range(50))
