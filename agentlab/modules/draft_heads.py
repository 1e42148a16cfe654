"""Multi-token draft heads, ours: Medusa-style parallel heads and a Gumiho-style hybrid (serial + parallel).

Heads sit on the target's last (normed) hidden state h_t and reuse its frozen ``lm_head``. With the
target's own next token x_{t+1} = argmax lm_head(h_t):
- parallel (Medusa, Cai et al. 2024) head k: ResBlock h + SiLU(W_k h) -> lm_head, predicts x_{t+1+k};
  W_k starts at zero, so an untrained head repeats the base prediction.
- serial (Gumiho, 2025, simplified): s_0 = h_t; s_i = s_{i-1} + SiLU(W_i [s_{i-1}; e(x_{t+i})]) -> lm_head
  predicts x_{t+1+i}, each step seeing the token drafted before it. Gumiho uses small Transformer blocks
  for the serial part; ours are one-layer MLPs. Serial heads draft the first positions (where accuracy
  matters most), parallel heads the later ones.
Training (``train_draft_heads``): the target is frozen; hidden states of the calibration text are
computed once; each step samples positions and minimises the cross-entropy of every head against the
text's true future tokens (serial heads teacher-forced on the true tokens).
Decoding (``heads_generate``) uses the verification loop of ``speculative`` (greedy, lossless): drafts
form one chain (no tree attention).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from agentlab.modules.speculative import _loop

__all__ = ["DraftHeads", "HeadTrainStats", "make_draft_heads", "train_draft_heads", "heads_generate"]


class DraftHeads(nn.Module):
    """``n_serial`` serial heads followed by ``n_parallel`` parallel heads over a hidden size ``hidden``."""

    def __init__(self, hidden: int, n_parallel: int = 3, n_serial: int = 0):
        super().__init__()
        self.hidden, self.n_parallel, self.n_serial = hidden, n_parallel, n_serial
        self.parallel = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(n_parallel))
        self.serial = nn.ModuleList(nn.Linear(2 * hidden, hidden) for _ in range(n_serial))
        for lin in list(self.parallel) + list(self.serial):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    @property
    def n_heads(self) -> int:
        return self.n_parallel + self.n_serial

    def parallel_state(self, h: torch.Tensor, k: int) -> torch.Tensor:
        return h + nn.functional.silu(self.parallel[k](h))

    def serial_state(self, s: torch.Tensor, emb: torch.Tensor, i: int) -> torch.Tensor:
        return s + nn.functional.silu(self.serial[i](torch.cat([s, emb], dim=-1)))


def make_draft_heads(model, n_parallel: int = 3, n_serial: int = 0) -> DraftHeads:
    """New (untrained) draft heads sized for ``model``: ``n_serial`` serial then ``n_parallel`` parallel.

    Returns:
        A ``DraftHeads`` module on the model's device and dtype. n_serial=0 is Medusa; n_serial>0 the hybrid.
    Example:
        >>> from agentlab.modules import draft_heads
        >>> heads = draft_heads.make_draft_heads(model, n_parallel=2, n_serial=2)
    """
    p = next(model.parameters())
    return DraftHeads(model.config.hidden_size, n_parallel, n_serial).to(device=p.device, dtype=p.dtype)


@dataclass
class HeadTrainStats:
    """What training the heads did."""

    steps: int
    tokens: int  # calibration tokens whose hidden states were used
    first_loss: float  # mean head cross-entropy at step 1
    last_loss: float  # at the last step
    head_accuracy: list  # per head, top-1 accuracy on the training positions after training
    seconds: float
    params: int  # trainable parameters of the heads


def _head_logits(model, heads: DraftHeads, h: torch.Tensor, tokens: torch.Tensor):
    """Logits of every head for positions with hidden ``h`` [N, d]; ``tokens`` [N, n_serial] teacher tokens."""
    out = []
    s = h
    emb = model.get_input_embeddings()
    for i in range(heads.n_serial):
        s = heads.serial_state(s, emb(tokens[:, i]), i)
        out.append(model.lm_head(s))
    for k in range(heads.n_parallel):
        out.append(model.lm_head(heads.parallel_state(h, k)))
    return out


def train_draft_heads(model, heads: DraftHeads, calib_ids: torch.Tensor, steps: int = 60, batch: int = 64,
                      lr: float = 3e-3, seed: int = 0):
    """Train draft heads on calibration text with the target frozen.

    Head j (0-based, serial first) at position t learns x_{t+2+j}; serial head i is fed the true
    x_{t+1+i} as its previous token.
    Args:
        model: the target HF causal LM (not changed).
        heads: from ``make_draft_heads``.
        calib_ids: ``[1, T]`` calibration tokens.
        steps, batch, lr: AdamW steps, positions per step, learning rate.
    Returns:
        ``(heads, HeadTrainStats)``.
    Example:
        >>> from agentlab.modules import draft_heads
        >>> heads = draft_heads.make_draft_heads(model, n_parallel=3)
        >>> heads, st = draft_heads.train_draft_heads(model, heads, calib_ids, steps=60)
    """
    import time

    start = time.perf_counter()
    dev = next(model.parameters()).device
    ids = calib_ids.to(dev)
    with torch.no_grad():
        h_all = model.model(input_ids=ids).last_hidden_state[0].detach()
    n_h = heads.n_heads
    t_max = ids.shape[1] - 2 - n_h
    if t_max < 1:
        raise ValueError("calibration text too short for these heads")
    for p in model.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(heads.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    tok = ids[0]
    first = last = 0.0
    heads.train()
    for step in range(steps):
        pos = torch.randint(0, t_max, (batch,), generator=gen).to(dev)
        teacher = torch.stack([tok[pos + 1 + i] for i in range(heads.n_serial)], 1) if heads.n_serial else None
        logits = _head_logits(model, heads, h_all[pos], teacher)
        loss = sum(nn.functional.cross_entropy(lg.float(), tok[pos + 2 + j]) for j, lg in enumerate(logits)) / n_h
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 0:
            first = loss.item()
        last = loss.item()
    heads.eval()
    with torch.no_grad():
        pos = torch.arange(0, t_max, device=dev)
        teacher = torch.stack([tok[pos + 1 + i] for i in range(heads.n_serial)], 1) if heads.n_serial else None
        logits = _head_logits(model, heads, h_all[pos], teacher)
        acc = [(lg.argmax(-1) == tok[pos + 2 + j]).float().mean().item() for j, lg in enumerate(logits)]
    for p in model.parameters():
        p.requires_grad_(True)
    n_params = sum(p.numel() for p in heads.parameters())
    return heads, HeadTrainStats(steps, int(ids.shape[1]), first, last, acc, time.perf_counter() - start, n_params)


def heads_generate(model, heads: DraftHeads, input_ids: torch.Tensor, max_new_tokens: int = 32, eos_token_id=None):
    """Greedy decoding drafted by the heads and verified by the target (output identical to plain greedy).

    Returns:
        ``(ids, speculative.SpecStats)``; tau counts accepted drafts + 1 per target pass.
    Example:
        >>> from agentlab.modules import draft_heads
        >>> ids, st = draft_heads.heads_generate(model, heads, prompt_ids, max_new_tokens=32)
    """
    emb = model.get_input_embeddings()

    @torch.no_grad()
    def propose(seq, h, budget):
        drafts = []
        s = h
        prev = seq[-1]
        for i in range(heads.n_serial):
            s = heads.serial_state(s, emb(torch.tensor(prev, device=h.device)), i)
            prev = int(model.lm_head(s).argmax())
            drafts.append(prev)
        for k in range(heads.n_parallel):
            drafts.append(int(model.lm_head(heads.parallel_state(h, k)).argmax()))
        return drafts[:budget], None

    method = "medusa_heads" if heads.n_serial == 0 else "hybrid_heads"
    return _loop(model, input_ids, max_new_tokens, propose, method, eos_token_id=eos_token_id)
