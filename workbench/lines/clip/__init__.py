"""The CLIP line: a ViT image tower and a text transformer trained from scratch, end to end,
on image-caption pairs (research note ``004``), on the contrastive core.

Everything of this line is in this folder (see README.md); it imports only the core.

| module | what |
| --- | --- |
| ``config`` | the run config: data (Flickr30k, COCO, geo-captions), text (tokenizer), model (both towers), loss |
| ``data`` | the caption layouts, image-level splits, decoding, batch augmentation |
| ``tokenizer`` | offline WordPiece (MiniLM's vocabulary, or trained on the captions); travels in the bundle |
| ``models`` | ViT image tower, causal / bidirectional text transformer, projections, clip / siglip loss |
| ``evaluate`` | I2T / T2I R@K, chance, zero-shot continent / country from prompt templates, test artifacts |
| ``experiment`` | the ``clip`` experiment kind on the core trainer (image cache, tokenizer inside the model) |
| ``bundle`` | load a bundle or run (the serving interface), export a run, the bundle README |
| ``cli`` | ``python -m workbench clip export|export-demo`` |
| ``retrieval`` | the Retrieval page's entry point (``list_sources``, ``load``) |
| ``bench`` | ``python -m workbench bench clip``: trainer vs bare loop, data pipeline samples/s |
"""
TITLE = "CLIP from scratch"
