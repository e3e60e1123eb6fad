"""Training: data and augmentation (``data``), losses (``losses``), §3.3 sample mining (``mining``),
the one training loop with Adam + poly decay, checkpoints and DDP (``trainer``), stage 1 (``stage1``:
TPN for masks and colour, STM-1), stage 2 (``stage2``: MSN; ``frozen``: the nets that mine,
``samples``: the mined samples and MSN's batches). The CLI is ``msn train``; the validation protocol
(``msn evaluate``) is ``msn_core.evaluation``."""
