"""``predict_files``: when no file can be read, the one-line error names them and why (issue 19).

A plumbing-only model (random weights): nothing here claims accuracy.
"""

from __future__ import annotations

import keras
import pytest

from advisor.app.predict import predict_files
from advisor.backbones.model_file import save_model
from advisor.errors import DatasetError


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    return save_model(model, tmp_path_factory.mktemp("model") / "model.keras", ["even", "odd"])


def test_no_readable_file_names_the_file_and_its_reason(model_path, tmp_path):
    broken = tmp_path / "holiday.jpg"
    broken.write_bytes(b"not a JPEG")
    with pytest.raises(DatasetError) as raised:
        predict_files(model_path, [broken])
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"none of the 1 file(s) could be read as an image ({broken}: not an image")
    assert message.endswith("; pass readable JPEG, PNG, BMP, GIF, TIFF or WebP images")


def test_no_readable_file_names_the_first_three_then_counts_the_rest(model_path, tmp_path):
    for i in range(5):
        (tmp_path / f"empty_{i}.png").write_bytes(b"")
    with pytest.raises(DatasetError) as raised:
        predict_files(model_path, [tmp_path])
    message = str(raised.value)
    assert message.startswith("none of the 5 file(s) could be read as an image (")
    assert f"{tmp_path / 'empty_2.png'}: empty file (0 bytes); ... and 2 more)" in message
    assert "empty_3.png" not in message
