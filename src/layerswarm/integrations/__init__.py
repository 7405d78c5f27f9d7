"""A plan (a study's trial, or its best) in the training code people already have.

Each module imports its library, an optional extra: :mod:`.hf` (Hugging Face ``Trainer``),
:mod:`.lightning` (a ``BaseFinetuning`` callback), :mod:`.peft` (LoRA's ``layers_to_transform``
and ``modules_to_save``), :mod:`.timm` (parameter groups for ``create_optimizer_v2``).
"""
