"""The soft-prompt line: GPS -> frozen location encoder -> a soft-token sequence [B, L, D].

Everything of this line is in this folder (see README.md); it imports only the core.

| module | what |
| --- | --- |
| ``config`` | the run config: data, targets, features, model (one section per architecture), loss |
| ``models`` | ``SEQUENCE_MODELS``: softprompt (mixture over K learnable sequences), lightweight_transformer, direct; honest parameter counts |
| ``losses`` | ``LOSS_TERMS``: token MSE, cosine, Gram, contrastive, dictionary diversity, usage balance, sharpness |
| ``targets`` | prompts from templates over city attributes; cached text-encoder target sequences |
| ``data`` | city table, S2-cell held-out split, batched datasets |
| ``evaluate`` | token cosine, normalised MSE, retrieval R@k, country match, usage perplexity, seed summaries |
| ``bundle`` | the model bundle (core format) and the reference's (model_state_dict, dict_state_dict) |
| ``explorer`` | what the Soft-Prompt Explorer page does: load a source, answer a click, atlas grid |
| ``figures`` | plotly figures of mixtures, the atlas and token similarities |
| ``experiment`` | the registered ``softprompt`` kind: a facade over the modules above |
| ``cli`` / ``bench`` / ``ui`` | ``python -m workbench softprompt ...``, ``bench softprompt``, the page sections |
"""
TITLE = "Soft prompts"
PAGES = ("3_Soft_Prompt_Explorer.py",)
