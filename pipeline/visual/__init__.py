"""Stage one, visual side: GCN backbones, pretraining on seen classes only, keyframe masking, extraction.

Owns ``backbones/`` (ST-GCN, Shift-GCN, checkpoints), ``pretrain.py``/``pretrain_loop.py`` (``smie
pretrain-backbone``), ``keyframes.py`` (motion attention, both masking variants) and ``extract.py`` (``smie
extract-visual``). May import ``smie.features``, ``smie.pipeline.data`` and ``smie.pipeline.device``; never
stage two or the text side.
"""
