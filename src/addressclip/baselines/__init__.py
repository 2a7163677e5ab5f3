"""The paper's baselines and the references around them (zero-shot, L_address-only fine-tune, CoOp,
CoCoOp, MaPLe, linear probe, CLIP-Adapter, Tip-Adapter(-F), Image->GPS->Address retrieval, chance,
majority, raw-pixel NN), all on one feature store and one evaluation path.

The registry (`addressclip.baselines.registry.BASELINES`) is light (no torch import) and lazy: each
method's module is imported when the method runs.
"""
