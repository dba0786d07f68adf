"""finetune-advisor: measure a labelled image folder, plan a transfer-learning regime, run it."""

__version__ = "0.1.0"
