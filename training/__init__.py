"""Training the captioner (imports captioner, never the reverse).

Library: data (Karpathy-format datasets), features (the feature cache), losses, metrics,
cider, rewards (self-critical samples and their rewards), config, distributed, batches,
captions (caption a split), loop (the epoch and step loop every stage shares), checkpoints
(what a run keeps to resume from), runlog (its log and curves) and runner (a stage from start
to end, and its exit status). Stages, each a module that builds its Stage with its own step,
with an entry point run as `python -m training.<name>`: train, finetune, scst. Other entry
points: evaluate, cache, export, convert. Installed (`pip install .`), this folder is the
package captioner.training, so its modules import each other relatively; train, finetune,
scst, evaluate and convert are then the console scripts captioner-<name>.
"""
