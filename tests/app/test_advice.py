"""advise's measuring pass and the run that follows it share their embeddings (issue 18).

Real data (scikit-image's 25 px LFW crops) and the real pretrained MobileNetV2:
the claim is how many images go through the backbone, not any accuracy.
"""

from __future__ import annotations


from advisor.app import pipeline
from advisor.examples import write_dataset
from advisor.plan import Regime
from tests.strategies.fakes import count_embedded_rows


def test_an_svm_run_embeds_no_image_the_measuring_pass_embedded(fresh_cache, tmp_path, monkeypatch,
                                                                 caplog):
    faces = write_dataset("lfw-faces", tmp_path / "sets", seed=0)  # 200 crops of 25 px
    advice = pipeline.advise(faces, regime=Regime.SVM, seed=0)
    plan = advice.plan
    # 25 px: the SVM runs at 224 px from the native pixels, as the measuring pass did.
    assert (plan.image_size, plan.decode_size, advice.profile.image_size) == (224, 25, 224)
    computed = count_embedded_rows(monkeypatch)
    with caplog.at_level("INFO", logger="strategies.embeddings"):
        result = pipeline.execute(advice, tmp_path / "run")
    # Every training and validation image was in the sample (200 < the cap): the SVM and its
    # calibration read them all from the measuring pass (the test split is scored by model.keras).
    assert computed == []
    shared = [r.getMessage() for r in caplog.records if "embedded by the measuring pass" in r.getMessage()]
    n_train, n_val = (len(advice.dataset.records(split)) for split in ("train", "val"))
    assert shared == [f"Embedding 0 of {n} images; {n} were embedded by the measuring pass."
                      for n in (n_train, n_val)]
    assert result.evaluation.accuracy > 0.5
