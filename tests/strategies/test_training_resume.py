"""Issue 20 (part 4): training survives ``kill -9``; issue 16: one line per epoch in a log.

The kill test trains a tiny convolutional model (random images, Dropout, a
random flip, AdamW with warm-up: every source of state a resume must restore)
through :func:`strategies.training.train` on :class:`ImageBatches` in a child
process, which runs it once uninterrupted (the reference), then again until
``SIGKILL`` hits it in the middle of saving epoch 3 (of 3). The same call in
this process then resumes after epoch 2 and must end on the reference's weights
and metrics. The other tests are in-process fakes, as Keras' ``early_stopping_test.py``.
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from advisor.errors import StorageError
from advisor.plan import Optimizer, Plan
from strategies import callbacks
from strategies.callbacks import STATE_FILE, EpochLog, PhaseCheckpoint, TrainingGuard
from tests.strategies import fakes
from tests.strategies.fakes import two_layer_model
from strategies.training import train

#: Tolerance of "the metrics of an uninterrupted run": on CPU the resumed run
#: is bit-identical; this leaves room for reduction-order noise elsewhere.
ATOL = 1e-6

#: The run, shared by the child process and this one (``run(work_dir)``).
TINY_RUN = textwrap.dedent('''
    import keras, numpy as np
    from advisor.plan import Optimizer, Plan, Regime
    from strategies.batches import ImageBatches
    from strategies.training import augmentation_for, train

    def run(work_dir, epochs=3):
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (96, 8, 8, 3), dtype=np.uint8)
        score = images[..., 0].mean(axis=(1, 2)) - images[..., 2].mean(axis=(1, 2))
        labels = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3])).astype("int32")
        inputs = keras.Input((8, 8, 3), dtype="uint8")
        x = keras.layers.Rescaling(1 / 255)(inputs)
        x = keras.layers.Conv2D(8, 3, activation="relu")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dropout(0.3, seed=1)(x)
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
        plan = Plan(regime=Regime.FULL, backbone="tiny", image_size=8, frozen_blocks=(),
                    feature_layer="x", optimizer=Optimizer.ADAMW, head_learning_rate=3e-2,
                    backbone_learning_rate=3e-2, batch_size=16, head_epochs=0, epochs=epochs,
                    warmup_epochs=1, patience=10, augmentation=("flip",), class_weights=None,
                    svm_c_grid=(1.0,), seed=0)
        batches = ImageBatches(images[:64], labels[:64], batch_size=16, shuffle=True, seed=0,
                               augmentation=augmentation_for(plan, seed=0))
        val = ImageBatches(images[64:], labels[64:], batch_size=16)
        body = model.layers[2].trainable_variables  # the "backbone": half the head's rate
        history = train(model, plan, batches, val, phase="fine-tune", learning_rate=3e-2,
                        epochs=epochs, warmup_epochs=1, scaled_variables=body, rate_factor=0.5,
                        work_dir=work_dir)
        return model, history
''')

#: The child: the reference run, then the same run killed while it saves epoch 3's state.
CHILD = TINY_RUN + textwrap.dedent('''
    import json, os, signal, sys
    from pathlib import Path
    from strategies import callbacks

    reference, killed = Path(sys.argv[1]), Path(sys.argv[2])
    model, history = run(reference / "work")
    np.savez(reference / "weights.npz", *model.get_weights())
    (reference / "history.json").write_text(json.dumps(history))

    real = callbacks.atomic_write_text
    def torn_write(path, text):  # the process dies with state.json half rewritten
        if json.loads(text)["epoch"] == 3:
            with callbacks.atomic_path(path) as tmp:
                tmp.write_text(text[: len(text) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
        real(path, text)
    callbacks.atomic_write_text = torn_write
    run(killed)
''')


def test_kill_9_while_saving_an_epoch_resumes_to_the_uninterrupted_result(tmp_path):
    reference, work = tmp_path / "reference", tmp_path / "killed"
    reference.mkdir()
    done = subprocess.run([sys.executable, "-c", CHILD, str(reference), str(work)],
                          capture_output=True, text=True, timeout=300, check=False,
                          env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    # Issue 16: not a terminal, so one line per epoch (phase, epoch, seconds, metrics).
    lines = [line for line in done.stderr.splitlines() if line.startswith("fine-tune epoch")]
    assert len(lines) == 3 + 2, done.stderr[-3000:]  # the reference's 3, the killed run's first 2
    assert all(" - val_loss: " in line and " - loss: " in line and "s - " in line for line in lines)

    phase = work / "backup" / "fine-tune"
    state = json.loads((phase / STATE_FILE).read_text())
    assert state["epoch"] == 2, "the torn epoch-3 state must not replace epoch 2's"
    best = state["guard"]["best_epoch"]
    assert best == 0 or (phase / state["best"]).is_file(), "the best weights are on disk"
    leftovers = {p.name for p in phase.iterdir()} - {STATE_FILE, state["weights"], state["random"],
                                                     state["best"]}
    assert any(name.startswith(".state.json.") for name in leftovers)  # the torn temporary

    namespace: dict = {}
    exec(compile(TINY_RUN, "tiny_run", "exec"), namespace)
    model, history = namespace["run"](work)  # the same call again, in a fresh model
    expected = np.load(reference / "weights.npz")
    for i, weights in enumerate(model.get_weights()):
        np.testing.assert_allclose(weights, expected[f"arr_{i}"], atol=ATOL, rtol=0)
    uninterrupted = json.loads((reference / "history.json").read_text())
    assert history["attempts"][0]["resumed_from_epoch"] == 2
    assert [e["epoch"] for e in history["epochs"]] == [1, 2, 3]
    for resumed, original in zip(history["epochs"], uninterrupted["epochs"], strict=True):
        assert resumed.keys() == original.keys()
        for key in resumed:
            assert resumed[key] == pytest.approx(original[key], abs=ATOL), key
    assert history["best_epoch"] == uninterrupted["best_epoch"]
    assert history["best_val_loss"] == pytest.approx(uninterrupted["best_val_loss"], abs=ATOL)
    assert "resumed after epoch 2" in history["notes"][0]
    after = json.loads((phase / STATE_FILE).read_text())
    assert after["final"] and {p.name for p in phase.iterdir()} == {STATE_FILE, after["final"]}


# --------------------------------------------------------------------------- #
# In-process fakes
# --------------------------------------------------------------------------- #
def blobs(seed: int = 0, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = (rng.normal(size=(n, 8)) + 2.0 * np.eye(8)[y]).astype("float32")
    return x, y.astype("int32")


def small_model() -> keras.Model:
    return two_layer_model(hidden=8)


def fake_plan(**overrides) -> Plan:
    return fakes.fake_plan(**(dict(image_size=8, optimizer=Optimizer.ADAMW, head_learning_rate=0.05,
                                   backbone_learning_rate=0.05, batch_size=30, head_epochs=4, epochs=4,
                                   warmup_epochs=0, patience=3) | overrides))


def test_a_finished_phase_is_restored_not_trained_again(tmp_path, monkeypatch):
    keras.utils.set_random_seed(0)
    model = small_model()
    first = train(model, fake_plan(), blobs(), blobs(1), phase="head", learning_rate=0.05,
                  epochs=2, work_dir=tmp_path)
    trained = model.get_weights()
    keras.utils.set_random_seed(0)
    again = small_model()

    def no_fit(*args, **kwargs):
        raise AssertionError("a finished phase was trained again")

    monkeypatch.setattr(again, "fit", no_fit)
    second = train(again, fake_plan(), blobs(), blobs(1), phase="head", learning_rate=0.05,
                   epochs=2, work_dir=tmp_path)
    for new, old in zip(again.get_weights(), trained, strict=True):
        np.testing.assert_array_equal(new, old)
    assert second["epochs"] == first["epochs"] and second["best_epoch"] == first["best_epoch"]
    assert "restored as it finished" in second["notes"][0]


def test_a_state_of_another_model_or_plan_is_discarded(tmp_path, caplog):
    keras.utils.set_random_seed(0)
    train(small_model(), fake_plan(), blobs(), blobs(1), phase="head", learning_rate=0.05,
          epochs=1, work_dir=tmp_path)
    keras.utils.set_random_seed(0)
    history = train(small_model(), fake_plan(seed=1), blobs(), blobs(1), phase="head",
                    learning_rate=0.05, epochs=1, work_dir=tmp_path)
    assert history["attempts"][0]["resumed_from_epoch"] is None
    assert not any("resumed" in note or "restored" in note for note in history["notes"])
    assert "Discarding the saved training state" in caplog.text


def test_the_guard_state_and_best_weights_survive_a_restart(tmp_path):
    x, y = blobs()
    keras.utils.set_random_seed(0)
    model = small_model()
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    start = model.evaluate(x, y, verbose=0, return_dict=True)
    guard = TrainingGuard(start_loss=start["loss"], patience=5)
    checkpoint = PhaseCheckpoint(tmp_path, guard, signature="s", start=start)
    model.fit(x, y, validation_data=(x, y), epochs=2, callbacks=[guard, checkpoint], verbose=0)
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert saved["guard"] == guard.get_state() and saved["guard"]["best_epoch"] == 2
    on_disk = np.load(tmp_path / saved["best"])
    for i, weights in enumerate(guard.best_weights):  # the best weights are on disk
        np.testing.assert_array_equal(on_disk[f"arr_{i}"], weights)

    keras.utils.set_random_seed(0)
    fresh = small_model()
    fresh.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    resumed = TrainingGuard(start_loss=start["loss"], patience=5)
    again = PhaseCheckpoint(tmp_path, resumed, signature="s", start=start)
    assert again.load() is not None and again.resume_epoch(10) == 2
    fresh.fit(x, y, validation_data=(x, y), epochs=2, initial_epoch=2,
              callbacks=[resumed, again], verbose=0)  # no epoch left: restores the best
    assert resumed.get_state() == guard.get_state()
    for new, old in zip(fresh.get_weights(), guard.best_weights, strict=True):
        np.testing.assert_array_equal(new, old)


def test_a_full_disk_while_saving_the_training_state_is_one_line(tmp_path, monkeypatch):
    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(callbacks, "atomic_write_text", full)
    keras.utils.set_random_seed(0)
    with pytest.raises(StorageError, match="No space left on device") as raised:
        train(small_model(), fake_plan(), blobs(), blobs(1), phase="head", learning_rate=0.05,
              epochs=2, work_dir=tmp_path)
    message = str(raised.value)
    assert "\n" not in message and str(tmp_path / "backup" / "head") in message
    assert "free space there and run the same command again" in message


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [False, True])
def test_one_line_per_epoch_when_stderr_is_not_a_terminal(terminal, monkeypatch):
    stream = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    keras.utils.set_random_seed(0)
    train(small_model(), fake_plan(), blobs(), blobs(1), phase="head", learning_rate=0.05, epochs=2)
    lines = [line for line in stream.getvalue().splitlines() if " epoch " in line]
    if terminal:  # a terminal keeps today's quiet default
        assert lines == []
        return
    assert [line.split(" - ")[0] for line in lines] == [f"head epoch {e}/2" for e in (1, 2)]
    assert all(line.split(" - ")[1].endswith("s") for line in lines)
    assert all(f" - {key}: " in lines[0] for key in ("loss", "accuracy", "val_loss", "val_accuracy"))


def test_epoch_log_writes_where_it_is_told():
    stream = io.StringIO()
    model = small_model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = blobs()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[EpochLog("probe", stream=stream)])
    assert len(stream.getvalue().splitlines()) == 2
