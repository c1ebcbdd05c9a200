"""Score mode: rank the label words by their log-likelihood given the prompt; no generation.

Each candidate is scored as the sum of log p(token) over the label's tokens followed by EOS: the same
text training teaches (so "not" cannot win over "not_entailment" by being a prefix). There are no
invalid answers.

Fast path: the prefix every prompt shares (system prompt, instruction) is encoded once; each batch is
one forward pass over the prompts' own tokens and every candidate's tokens (a 4-D mask keeps the
candidates apart), continuing the prefix's cache: a prompt costs its own tokens plus the labels' tokens.
Soft-prompt models (peft drops ``position_ids`` for them) take the
plain path: one right-padded forward pass per (prompt, candidate).
"""

from __future__ import annotations

import torch

from bench.evaluation.prefix import expanded_cache, shared_prefix
from bench.progress import Progress


def _candidate_ids(tokenizer, candidates: list[str]) -> list[list[int]]:
    return [
        tokenizer(c, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for c in candidates
    ]


@torch.inference_mode()
def score_candidates(
    model,
    tokenizer,
    prompt_ids: list[list[int]],
    candidates: list[str],
    *,
    batch_size: int,
    shared_prompt=True,
) -> list[list[float]]:
    """``scores[i][j]`` = log p(candidates[j] + EOS | prompt i), summed over its tokens.

    ``shared_prompt=False`` takes the plain path (needed for soft prompts). Progress (prompts, or
    (prompt, label) pairs on the plain path, done per second and ETA) goes to a bar or the log.
    """
    model.eval()
    cand_ids = _candidate_ids(tokenizer, candidates)
    if shared_prompt:
        with Progress("score", len(prompt_ids)) as progress:
            return _score_shared(model, tokenizer, prompt_ids, cand_ids, batch_size, progress)
    with Progress("score", len(prompt_ids) * len(cand_ids), unit="pairs") as progress:
        return _score_plain(model, tokenizer, prompt_ids, cand_ids, batch_size, progress)


def _score_shared(model, tokenizer, prompt_ids, cand_ids, batch_size, progress) -> list[list[float]]:
    """One forward pass per batch over each prompt's own tokens *and* every candidate.

    Columns of a row: the shared prefix (from the cache), the prompt's suffix (left-padded), then one
    block per candidate holding its tokens but the last (right-padded). A 4-D attention mask lets a
    candidate block see the prefix, the row's suffix and its own earlier tokens, never another
    candidate; positions continue the suffix in every block. The logits of the suffix's last column
    predict each candidate's first token; a block's logits predict the candidate's next tokens.
    """
    device = next(model.parameters()).device
    n_cand = len(cand_ids)
    block = max(len(c) for c in cand_ids) - 1  # a candidate's input tokens: all but its last
    n_prefix, prefix_kv = shared_prefix(model, prompt_ids, device)

    # Targets, as index tensors: candidate j's token k is predicted at kept column c[j][k].
    target = torch.tensor([c + [0] * (block + 1 - len(c)) for c in cand_ids], device=device)
    valid = torch.tensor([[k < len(c) for k in range(block + 1)] for c in cand_ids], device=device)
    column = torch.tensor(
        [[0] + [1 + j * block + k for k in range(block)] for j in range(n_cand)], device=device
    )

    scores = [[0.0] * n_cand for _ in prompt_ids]
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        suffixes = [prompt_ids[i][n_prefix:] for i in batch]
        width = max(len(s) for s in suffixes)
        q_len = width + n_cand * block
        rows = len(batch)
        ids = torch.full((rows, q_len), tokenizer.pad_token_id, dtype=torch.long)
        positions = torch.zeros((rows, q_len), dtype=torch.long)
        real = torch.zeros((rows, q_len), dtype=torch.bool)  # which query/key columns are tokens
        owner = torch.full((q_len,), -1, dtype=torch.long)  # candidate block of a column; -1: suffix
        for j in range(n_cand):
            owner[width + j * block : width + (j + 1) * block] = j
        for row, suffix in enumerate(suffixes):
            n = len(suffix)
            ids[row, width - n : width] = torch.tensor(suffix)
            positions[row, width - n : width] = n_prefix + torch.arange(n)
            real[row, width - n : width] = True
            for j, cand in enumerate(cand_ids):
                col = width + j * block
                tokens = cand[:-1]
                ids[row, col : col + len(tokens)] = torch.tensor(tokens, dtype=torch.long)
                positions[row, col : col + block] = n_prefix + n + torch.arange(block)
                real[row, col : col + len(tokens)] = True
        idx = torch.arange(q_len)
        causal = idx[None, :] <= idx[:, None]
        # a key is visible if it is a real token, causal, and either suffix or the query's own block
        same_block = (owner[None, :] == -1) | (owner[None, :] == owner[:, None])
        visible = real[:, None, :] & (causal & same_block)[None]
        visible |= torch.eye(q_len, dtype=torch.bool)[None]  # padding queries see themselves: no NaN
        mask = torch.cat([torch.ones((rows, q_len, n_prefix), dtype=torch.bool), visible], dim=2)
        out = model(
            input_ids=ids.to(device),
            attention_mask=mask[:, None].to(device),
            position_ids=positions.to(device),
            past_key_values=expanded_cache(prefix_kv, rows) if prefix_kv else None,
            use_cache=prefix_kv is not None,
            logits_to_keep=1 + n_cand * block,
        )
        logprobs = torch.log_softmax(out.logits.float(), dim=-1)  # (rows, 1 + n_cand * block, vocab)
        # picked[r, j, k] = log p(candidate j's token k | row r's prompt, its tokens before k)
        picked = logprobs[:, column.flatten()].gather(2, target.flatten()[None, :, None].expand(rows, -1, 1))
        totals = (picked.view(rows, n_cand, block + 1) * valid).sum(-1)
        for row, i in enumerate(batch):
            scores[i] = totals[row].tolist()
        progress.update(rows)
    return scores


def _score_plain(model, tokenizer, prompt_ids, cand_ids, batch_size, progress) -> list[list[float]]:
    device = next(model.parameters()).device
    pairs = [(i, j) for i in range(len(prompt_ids)) for j in range(len(cand_ids))]
    pairs.sort(key=lambda p: len(prompt_ids[p[0]]) + len(cand_ids[p[1]]))  # less padding
    scores = [[0.0] * len(cand_ids) for _ in prompt_ids]
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start : start + batch_size]
        seqs = [prompt_ids[i] + cand_ids[j] for i, j in batch]
        width = max(len(s) for s in seqs)
        # Right padding: real tokens keep positions 0..n-1, padding sits after them and is masked.
        input_ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            input_ids[row, : len(seq)] = torch.tensor(seq)
            attention[row, : len(seq)] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
        logits = logits[:, logits.shape[1] - width :].float()  # soft prompts prepend virtual positions
        logprobs = torch.log_softmax(logits, dim=-1)
        for row, (i, j) in enumerate(batch):
            start_pos = len(prompt_ids[i])
            target = torch.tensor(cand_ids[j], device=logprobs.device)
            # The token at position t is predicted by the logits at t - 1.
            picked = logprobs[row, start_pos - 1 : start_pos - 1 + len(target)].gather(1, target[:, None])
            scores[i][j] = float(picked.sum())
        progress.update(len(batch))
    return scores


def rank_labels(scores: list[list[float]], labels: list[str]) -> list[str]:
    """The highest-scoring label per example (ties go to the earlier label)."""
    return [labels[max(range(len(labels)), key=lambda j: row[j])] for row in scores]
