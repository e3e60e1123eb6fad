"""MSN, the Memory Selection Network (paper §3.3): scores how good a memory frame p is as the
guide for a target t, given the annotated object's features a.

Two streams on the stride-32 maps (after a shared 1x1 ``embed``):
  stream 1: concat(FlowCorr(p, a), FlowCorr(p, t), FlowCorr(t, a)) -> convs -> pooled vector
  stream 2: concat(p, a, t)                                         -> convs -> pooled vector
  concat(vectors) -> FC -> one logit (sigmoid = probability that p is a good guide).
With ``MSNConfig.annotated_head``, a candidate flagged as annotated by the user (an exact label,
not a prediction) adds a second FC of the same vector to its logit, so MSN learns when to prefer
the user's frames.

With ``MSNConfig.label_aware``, p's embedding under p's own label m_p (its predicted mask, the
annotation for a user's frame) adds FlowCorr(p*m_p, a) to stream 1 and p*m_p to stream 2, through
first convs of their own. Both depend on (p, a, m_p) only: ``label_terms``, added to the memory
terms once, when p enters the pool with its label, so scoring a pair costs the same as without.

The first conv of each stream is linear in its input channels, so its pre-activation is a sum of
a part that depends on (p, a) only (``memory_terms``, cached once per memory frame), a part on
(t, a) only (``target_terms``, once per target) and a part on (p, t) (in ``pair_scores``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msn_core.config import MSNConfig
from msn_core.errors import InputError
from msn_core.models.common import ConvGNReLU, batch_size, check_4d, num_groups
from msn_core.models.correlation import FlowCorr


class _StreamTail(nn.Module):
    """Everything after a stream's first conv: GN-ReLU, one more conv, global avg+max pooling."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.GroupNorm(num_groups(hidden), hidden)
        self.conv = ConvGNReLU(hidden, hidden)

    def forward(self, pre: Tensor) -> Tensor:
        x = self.conv(F.relu(self.norm(pre)))  # (N, hidden, h, w)
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)  # (N, 2*hidden)


class MSN(nn.Module):
    """Memory Selection Network with a cacheable split of its first layer."""

    def __init__(self, cfg: MSNConfig, in_channels: int):
        super().__init__()
        self.cfg = cfg
        e, hdn = cfg.embed_dim, cfg.hidden
        self.corr = FlowCorr(cfg.corr)
        d = self.corr.out_channels
        self.embed_conv = nn.Sequential(
            nn.Conv2d(in_channels, e, 1), nn.GroupNorm(num_groups(e), e), nn.ReLU()
        )
        # first convs over the full concatenations; input-channel slices give the split terms
        self.conv1_corr = nn.Conv2d(3 * d, hdn, 3, padding=1)  # [corr(p,a) | corr(p,t) | corr(t,a)]
        self.conv1_feat = nn.Conv2d(3 * e, hdn, 3, padding=1)  # [p | a | t]
        self.tail_corr = _StreamTail(hdn)
        self.tail_feat = _StreamTail(hdn)
        self.fc = nn.Linear(4 * hdn, 1)
        if cfg.label_aware:
            self.conv1_label_corr = nn.Conv2d(d, hdn, 3, padding=1, bias=False)  # corr(p*m_p, a)
            self.conv1_label_feat = nn.Conv2d(e, hdn, 3, padding=1, bias=False)  # p*m_p
        self.fc_annotated = nn.Linear(4 * hdn, 1) if cfg.annotated_head else None
        if self.fc_annotated is not None:  # starts as the plain MSN
            nn.init.zeros_(self.fc_annotated.weight)
            nn.init.zeros_(self.fc_annotated.bias)

    @property
    def memory_channels(self) -> int:
        """M, the channels of ``memory_terms`` / ``target_terms``."""
        return 2 * self.cfg.hidden

    # ------------------------------------------------------------------ pieces
    def _w(self, conv: nn.Conv2d, part: int) -> Tensor:
        """Weight slice of a first conv for input part 0, 1 or 2."""
        n = conv.in_channels // 3
        return conv.weight[:, part * n : (part + 1) * n]

    @staticmethod
    def _conv(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2)

    def embed(self, f32: Tensor) -> Tensor:
        """(N, C_in, h, w) stride-32 backbone map -> (N, E, h, w)."""
        check_4d(f32, "MSN.embed: f32", channels=self.embed_conv[0].in_channels)
        return self.embed_conv(f32)

    def memory_terms(self, e_p: Tensor, e_a: Tensor) -> Tensor:
        """(N, E, h, w), (1, E, h, w) -> (N, M, h, w): W_pa*corr(p, a) | W_p*p."""
        return self._memory_terms(e_p, self.corr(e_p, e_a))

    def label_terms(self, e_p: Tensor, e_a: Tensor, m_p: Tensor) -> Tensor:
        """Label-aware MSN: embeddings (N, E, h, w) and the frames' labels (N, 1, H, W) as object
        probabilities in [0, 1], at any size (area-resized to h, w) -> (N, M, h, w):
        W_la*corr(p*m_p, a) | W_l*(p*m_p). Added to ``memory_terms`` when p enters the pool."""
        if not self.cfg.label_aware:
            raise InputError("label_terms: this MSN is not label-aware (MSNConfig.label_aware=False)")
        check_4d(m_p, "MSN.label_terms: m_p", channels=1)
        if m_p.shape[0] != e_p.shape[0]:
            raise InputError(f"MSN.label_terms: {m_p.shape[0]} labels for {e_p.shape[0]} memory frames")
        if m_p.shape[-2:] != e_p.shape[-2:]:
            m_p = F.interpolate(m_p, size=e_p.shape[-2:], mode="area")
        e_pm = e_p * m_p.to(e_p.dtype)
        s1 = self._conv(self.corr(e_pm, e_a), self.conv1_label_corr.weight)
        s2 = self._conv(e_pm, self.conv1_label_feat.weight)
        return torch.cat([s1, s2], dim=1)

    def target_terms(self, e_t: Tensor, e_a: Tensor) -> Tensor:
        """(1, E, h, w), (1, E, h, w) -> (1, M, h, w): W_ta*corr(t, a) + b1 | W_t*t + W_a*a + b2."""
        return self._target_terms(e_t, e_a, self.corr(e_t, e_a))

    def frame_terms(self, e_f: Tensor, e_a: Tensor) -> tuple[Tensor, Tensor]:
        """Both roles of one frame from one corr(f, a): (target_terms, memory_terms). The loop
        scores frame t as a target, then stores it as a memory frame."""
        c = self.corr(e_f, e_a)
        return self._target_terms(e_f, e_a, c), self._memory_terms(e_f, c)

    def _memory_terms(self, e_p: Tensor, corr_pa: Tensor) -> Tensor:
        s1 = self._conv(corr_pa, self._w(self.conv1_corr, 0))  # (N, hidden, h, w)
        s2 = self._conv(e_p, self._w(self.conv1_feat, 0))  # (N, hidden, h, w)
        return torch.cat([s1.expand(s2.shape[0], -1, -1, -1), s2], dim=1)  # (N, M, h, w)

    def _target_terms(self, e_t: Tensor, e_a: Tensor, corr_ta: Tensor) -> Tensor:
        s1 = self._conv(corr_ta, self._w(self.conv1_corr, 2), self.conv1_corr.bias)
        s2 = self._conv(e_t, self._w(self.conv1_feat, 2), self.conv1_feat.bias)
        s2 = s2 + self._conv(e_a, self._w(self.conv1_feat, 1))
        b = batch_size("MSN.target_terms", s1.shape[0], s2.shape[0])
        return torch.cat([s1.expand(b, -1, -1, -1), s2.expand(b, -1, -1, -1)], dim=1)  # (1, M, h, w)

    def pair_scores(
        self, mem_terms: Tensor, e_p: Tensor, tgt_terms: Tensor, e_t: Tensor, annotated: Tensor | None = None
    ) -> Tensor:
        """mem_terms (N, M, h, w), e_p (N, E, h, w), tgt_terms (1, M, h, w), e_t (1, E, h, w),
        annotated (N,) flags of the user's frames (or None: none are) -> (N,) logits. Computes
        corr(p, t) for all N at once, adds the three parts, runs the rest."""
        m = self.memory_channels
        check_4d(mem_terms, "MSN.pair_scores: mem_terms", channels=m)
        check_4d(tgt_terms, "MSN.pair_scores: tgt_terms", channels=m)
        if mem_terms.shape[0] != e_p.shape[0]:
            raise InputError(
                f"MSN.pair_scores: mem_terms has {mem_terms.shape[0]} frames but e_p {e_p.shape[0]}"
            )
        hdn = self.cfg.hidden
        pair = self._conv(self.corr(e_p, e_t), self._w(self.conv1_corr, 1))  # (N, hidden, h, w)
        pre1 = mem_terms[:, :hdn] + tgt_terms[:, :hdn] + pair  # (N, hidden, h, w)
        pre2 = mem_terms[:, hdn:] + tgt_terms[:, hdn:]  # (N, hidden, h, w)
        return self._head(pre1, pre2, annotated)

    def _head(self, pre1: Tensor, pre2: Tensor, annotated: Tensor | None) -> Tensor:
        v = torch.cat([self.tail_corr(pre1), self.tail_feat(pre2)], dim=1)  # (N, 4*hidden)
        logits = self.fc(v).squeeze(1)  # (N,)
        if self.fc_annotated is not None and annotated is not None:
            if annotated.shape != logits.shape:
                raise InputError(f"MSN: {tuple(annotated.shape)} annotated flags for {logits.shape[0]} candidates")
            logits = logits + annotated.to(v.dtype) * self.fc_annotated(v).squeeze(1)
        return logits

    # ----------------------------------------------------------------- uncached
    def forward(
        self, f_p: Tensor, f_a: Tensor, f_t: Tensor, annotated: Tensor | None = None, m_p: Tensor | None = None
    ) -> Tensor:
        """Raw stride-32 backbone maps f_p (N, ...), f_a and f_t (1 or N, ...), the candidates'
        annotated flags (N,) (None: none are) and, for a label-aware MSN, their labels m_p
        (N, 1, H, W) -> (N,) logits."""
        n = batch_size("MSN.forward", f_p.shape[0], f_a.shape[0], f_t.shape[0])
        e_p, e_a, e_t = (self.embed(f).expand(n, -1, -1, -1) for f in (f_p, f_a, f_t))  # (N, E, h, w)
        corr = torch.cat(
            [self.corr(e_p, e_a), self.corr(e_p, e_t), self.corr(e_t, e_a)], dim=1
        )  # (N, 3D, h, w)
        pre1 = self.conv1_corr(corr)  # (N, hidden, h, w)
        pre2 = self.conv1_feat(torch.cat([e_p, e_a, e_t], dim=1))  # (N, hidden, h, w)
        if self.cfg.label_aware:
            if m_p is None:
                raise InputError("a label-aware MSN needs every candidate's label (m_p), got none")
            lab = self.label_terms(e_p, e_a, m_p)
            pre1, pre2 = pre1 + lab[:, : self.cfg.hidden], pre2 + lab[:, self.cfg.hidden :]
        return self._head(pre1, pre2, annotated)
