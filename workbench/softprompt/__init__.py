"""The soft-prompt line: GPS -> frozen location encoder -> a soft-token sequence [B, L, D].

| module | what |
| --- | --- |
| ``models`` | ``SEQUENCE_MODELS``: softprompt (mixture over K learnable sequences), lightweight_transformer, direct; honest parameter counts |
| ``losses`` | ``LOSS_TERMS``: token MSE, cosine, Gram, contrastive, dictionary diversity, usage balance, sharpness |
| ``targets`` | prompts from templates over city attributes; cached text-encoder target sequences |
| ``data`` | city table, S2-cell held-out split, batched datasets |
| ``evaluate`` | token cosine, normalised MSE, retrieval R@k, country match, usage perplexity, seed summaries |
| ``bundle`` | checkpoint bundles (model_state_dict, dict_state_dict, config) |
| ``explorer`` | what the Soft-Prompt Explorer page does: load a source, answer a click, atlas grid |

The experiment kind lives in ``workbench/experiments/softprompt.py``; the command line in
``workbench/commands/softprompt.py`` (``python -m workbench softprompt ...``).
"""
