"""The contrastive core the projection, SatCLIP and CLIP lines share.

| module | what |
| --- | --- |
| ``losses`` | ``LOSSES``: clip, siglip (optionally chunked), queue (MoCo), blip (momentum distillation), align; ``create_loss(name, **kw)``; each switches to its sharded form under torchrun |
| ``distributed`` | what the losses use under torchrun: ``world()``, ``gather_with_grad`` / ``gather_no_grad``, the ring step ``pass_right``, ``local_only()`` for work only some ranks do |
| ``retrieval`` | chunked I2T / T2I Recall@k and ranks with several captions per image, ``top_k``, zero-shot accuracy |
| ``encoded`` | the pre-encoded pair format (``{split}_image_embeddings.pt`` ...), image-level splits |
| ``artifacts`` | the paired embeddings set (``embeddings/paired.npy`` + ``paired.parquet``): image / text / location points in one space |
"""
from workbench.contrastive.losses import LOSSES, create_loss
from workbench.contrastive.retrieval import recall_mean, retrieval_metrics, top_k, zero_shot_accuracy

__all__ = ["LOSSES", "create_loss", "recall_mean", "retrieval_metrics", "top_k", "zero_shot_accuracy"]
