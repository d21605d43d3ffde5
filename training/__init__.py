"""Training the captioner (imports captioner, never the reverse).

Library: data (Karpathy-format datasets), features (the feature cache), losses, metrics,
cider, config, distributed, batches, captions (caption a split) and loop (the loop every
stage shares). Entry points, thin, run as `python -m training.<name>`: train, finetune,
scst, evaluate, cache, export, convert.
"""
