"""The soft-label loss of `control train` and the answer log-probabilities it reads.

Each function takes the `torch` module as an argument, so importing this module needs
no training stack (`control train` without torch gives the pip line, not an ImportError).
"""

from __future__ import annotations


def left_pad(torch, batch: list[list[int]], pad_id: int, device):
    """Token-id rows padded on the left: ids, attention mask and position ids."""
    width = max(len(ids) for ids in batch)
    ids = torch.tensor([[pad_id] * (width - len(r)) + list(r) for r in batch], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in batch], device=device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, pos


def answer_logprobs(torch, model, ids, mask, pos, answer_ids):
    """log P(A), log P(B) (summed over each label's token ids) after each padded prompt."""
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1)
    logp = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
    log_a = torch.logsumexp(logp[:, answer_ids["A"]], dim=-1)
    log_b = torch.logsumexp(logp[:, answer_ids["B"]], dim=-1)
    return log_a, log_b


def batch_logprobs(torch, model, batch: list[list[int]], pad_id: int, answer_ids, device):
    """log P(A), log P(B) after each prompt of `batch` (token-id lists)."""
    ids, mask, pos = left_pad(torch, batch, pad_id, device)
    return answer_logprobs(torch, model, ids, mask, pos, answer_ids)


def soft_loss(torch, log_a, log_b, q):
    """Cross-entropy with soft targets, and the KL between renormalised shares (nats)."""
    loss = -(q * log_a + (1 - q) * log_b)
    log_mass = torch.logaddexp(log_a, log_b)
    p = torch.exp(log_a - log_mass).clamp(1e-6, 1 - 1e-6)
    kl = _bernoulli_kl(torch, q, p)
    return loss, kl, torch.exp(log_mass)


def _bernoulli_kl(torch, q, p):
    q = q.clamp(0, 1)
    xlogy = torch.special.xlogy
    return xlogy(q, q) - xlogy(q, p) + xlogy(1 - q, 1 - q) - xlogy(1 - q, 1 - p)
