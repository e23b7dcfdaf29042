"""PPO with a learned value head, as the paper trained (its code: RL4VLM's PPO), for HF causal LMs.

trl 1.16 has no PPO trainer, so this is our own, in trl's shape: `PPOOptions` (a config
dataclass) and `PPOTrainer`. One update (= one RL step):

1. Rollout: `batch_size` hands (a seeded draw from the RL prompt set) play multi-turn
   episodes (`rlheals.train.rollout`: reply, the verifier's feedback, reply ... up to
   `attempts`, at `temperature`). Each reply is one PPO action; its state is everything
   before it (prompt, earlier replies and feedback).
2. Old log-probs and values: the action's log-prob is a sequence-level sum over the
   reply's tokens of log softmax(logits / temperature), tokens before the word `formula`
   weighted by `thought_prob_coef` (the paper: 0.5); the value is an MLP head
   h -> h/4 -> h/8 -> 1 (ReLU) on the LM's last hidden state at the last token before the
   reply (the last prompt token). Policy and value share the LM.
3. GAE across the attempts of an episode (`gamma`, `lam`; an episode ends at a correct
   reply or after its last attempt, with no bootstrap), returns = advantages + values,
   advantages normalised over the whole rollout buffer.
4. `epochs` passes over the buffer in `minibatches` seeded minibatches: clipped surrogate
   (`clip_range`), clipped value loss (`value_clip_range`, weight `vf_coef`), gradient norm
   clipped to `max_grad_norm`, Adam (`lr`, `adam_eps`; the value head at `value_lr`,
   by default the same), constant LR (so a longer run continues a shorter one exactly;
   the paper decays to 1e-9 over its 100 updates).

No KL penalty and no reference model, as in the paper. Every random choice of update k
is seeded from (seed, k) (hands, sampling, minibatch order), and the full state (policy,
value head, Adam) is saved every `save_every` updates under `checkpoint-<k>/` with a
COMPLETE marker, so a resumed run is the same run bit for bit. A kept step is exported
as a normal HF folder with the value head beside it in `value_head/`.

Differences from the paper's code: no "only the clipped surrogate when a ratio exceeds
10" rule (plain PPO clipping); the truncated last attempt is terminal (the paper's
environment adds a -1 on a sixth call); its 128 gradient-accumulation micro-steps of one
reply are `minibatches` minibatches here.

PPO trains in one process (compute.processes is for trl's SFT/GRPO/RLOO): its own loop
rolls out, scores and updates one model with a value head, and data parallelism would
need its rollouts gathered and its value head wrapped as well; one process on one GPU
fits the models this project trains with PPO. compute.save_total_limit prunes its states.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from rlheals.train.common import (
    COMPLETE,
    LOG,
    code_digest,
    complete_checkpoints,
    compute_identity,
    dir_identity,
    file_digest,
    latest_at_most,
    open_run,
    prune_states,
    seed_all,
    set_threads,
)
from rlheals.train.models import load_tokenizer, resolve_device
from rlheals.train.rollout import Episode, EpisodeOptions, run_episodes

VALUE_HEAD_DIR = "value_head"
VALUE_HEAD_FILE = "value_head.safetensors"


@dataclass
class PPOOptions:
    """PPO settings: config `rl` (batch_size, attempts, lr, temperature, max_completion_length,
    reward, gamma, save_every) and `rl.ppo` (the rest), plus seed/device/threads."""

    batch_size: int = field(default=16, metadata={"help": "episodes (hands) per update"})
    attempts: int = field(default=1, metadata={"help": "replies per episode, with feedback in between"})
    lr: float = field(default=3e-5, metadata={"help": "Adam learning rate (paper: 1e-6)"})
    value_lr: float | None = field(default=None, metadata={"help": "learning rate of the value head (None: lr, as the paper)"})
    temperature: float = field(default=1.0, metadata={"help": "rollout temperature, also divides the logits of the log-prob (paper: 0.2)"})
    max_completion_length: int = field(default=48, metadata={"help": "new tokens per reply"})
    reward: str = field(default="paper", metadata={"help": "paper (+5/+1/-1/-2/-3) or binary"})
    gamma: float = field(default=0.9, metadata={"help": "GAE discount across attempts"})
    lam: float = field(default=0.95, metadata={"help": "GAE lambda"})
    clip_range: float = field(default=0.1, metadata={"help": "PPO ratio clip"})
    value_clip_range: float = field(default=0.1, metadata={"help": "clip of the value change around the old value"})
    vf_coef: float = field(default=0.5, metadata={"help": "weight of the value loss"})
    epochs: int = field(default=4, metadata={"help": "passes over the rollout buffer per update"})
    minibatches: int = field(default=4, metadata={"help": "minibatches (optimizer steps) per pass"})
    max_grad_norm: float = field(default=0.01, metadata={"help": "gradient norm clip"})
    adam_eps: float = field(default=1e-7, metadata={"help": "Adam epsilon"})
    thought_prob_coef: float = field(default=0.5, metadata={"help": "log-prob weight of reply tokens before 'formula'"})
    save_every: int = 50
    seed: int = 0
    device: str = "auto"
    threads: int = 2
    save_total_limit: int | None = field(default=None, metadata={"help": "full states kept (compute.save_total_limit)"})

    def __post_init__(self) -> None:
        checks = {
            "rl.batch_size": self.batch_size >= 1, "rl.attempts": self.attempts >= 1, "rl.lr": self.lr > 0,
            "rl.ppo.value_lr": self.value_lr is None or self.value_lr > 0,
            "rl.temperature": self.temperature > 0, "rl.gamma": 0 <= self.gamma <= 1, "rl.ppo.lam": 0 <= self.lam <= 1,
            "rl.ppo.clip_range": self.clip_range > 0, "rl.ppo.value_clip_range": self.value_clip_range > 0,
            "rl.ppo.vf_coef": self.vf_coef >= 0, "rl.ppo.epochs": self.epochs >= 1,
            "rl.ppo.minibatches": self.minibatches >= 1, "rl.ppo.max_grad_norm": self.max_grad_norm > 0,
            "rl.ppo.adam_eps": self.adam_eps > 0, "rl.ppo.thought_prob_coef": self.thought_prob_coef >= 0,
            "rl.save_every": self.save_every >= 1,
            "compute.save_total_limit": self.save_total_limit is None or self.save_total_limit >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"PPO options out of range: {', '.join(f'{k}={getattr(self, k.split(chr(46))[-1])}' for k in bad)}")
        if self.reward not in ("paper", "binary"):
            raise ValueError(f"rl.reward {self.reward!r}: expected 'paper' or 'binary'")

    def run_key(self) -> dict:
        """What decides the trajectory (not how often it is saved, nor where it runs)."""
        return {k: v for k, v in asdict(self).items() if k not in ("device", "threads", "save_every", "save_total_limit")}


class ValueHead(nn.Module):
    """The paper's critic: MLP h -> h/4 -> h/8 -> 1 with ReLU (float32 whatever the LM's dtype)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.hidden_size = int(hidden_size)
        a, b = max(1, hidden_size // 4), max(1, hidden_size // 8)
        self.net = nn.Sequential(nn.Linear(hidden_size, a), nn.ReLU(), nn.Linear(a, b), nn.ReLU(), nn.Linear(b, 1))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden.float()).squeeze(-1)

    def save(self, folder: str | os.PathLike) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(folder / VALUE_HEAD_FILE))
        (folder / "config.json").write_text(json.dumps({
            "hidden_size": self.hidden_size, "layers": [self.hidden_size, max(1, self.hidden_size // 4), max(1, self.hidden_size // 8), 1],
            "activation": "relu", "input": "the LM's last hidden state at the last token before the reply",
        }, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "ValueHead":
        from safetensors.torch import load_file

        folder = Path(folder)
        cfg = json.loads((folder / "config.json").read_text())
        head = cls(cfg["hidden_size"])
        head.load_state_dict(load_file(str(folder / VALUE_HEAD_FILE)))
        return head


# ---------------------------------------------------------------- the math, testable on its own
def gae(rewards: Sequence[float], values: Sequence[float], gamma: float, lam: float) -> tuple[list[float], list[float]]:
    """(advantages, returns) of one episode's attempts; the episode ends after the last one.

    delta_t = r_t + gamma * V_{t+1} - V_t (V after the end is 0),
    A_t = delta_t + gamma * lam * A_{t+1}, returns_t = A_t + V_t.
    """
    adv = [0.0] * len(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        nxt = values[t + 1] if t + 1 < len(rewards) else 0.0
        delta = float(rewards[t]) + gamma * nxt - float(values[t])
        running = delta + gamma * lam * running
        adv[t] = running
    return adv, [a + float(v) for a, v in zip(adv, values)]


def thought_weights(tokenizer, reply_ids: Sequence[int], coef: float, marker: str = "formula") -> list[float]:
    """Per-token log-prob weights of a reply: `coef` for tokens before the first `marker`
    (the paper's 0.5 on the reasoning before `"formula":`), 1 from it on. Without a marker
    every token counts as before it."""
    if coef == 1.0 or not reply_ids:
        return [1.0] * len(reply_ids)
    text = tokenizer.decode(list(reply_ids), skip_special_tokens=True)
    cut = text.find(marker)
    if cut < 0:
        return [coef] * len(reply_ids)
    weights = []
    for j in range(len(reply_ids)):
        prefix = tokenizer.decode(list(reply_ids[: j + 1]), skip_special_tokens=True)
        weights.append(coef if len(prefix) <= cut else 1.0)
    return weights


def ppo_losses(new_logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, new_v: torch.Tensor,
               old_v: torch.Tensor, returns: torch.Tensor, clip: float, vclip: float) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(policy loss, value loss, stats): clipped surrogate and clipped value loss (0.5 * max of squares)."""
    ratio = torch.exp(new_logp - old_logp)
    pg = -torch.min(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv).mean()
    v_clipped = old_v + torch.clamp(new_v - old_v, -vclip, vclip)
    vloss = 0.5 * torch.max((new_v - returns) ** 2, (v_clipped - returns) ** 2).mean()
    stats = {
        "clip_fraction": float(((ratio.detach() - 1).abs() > clip).float().mean()),
        "approx_kl": float((old_logp - new_logp.detach()).mean()),
    }
    return pg, vloss, stats


@dataclass
class Sample:
    """One action of the buffer: a reply and what PPO needs of it."""

    context_ids: list[int]
    reply_ids: list[int]
    weights: list[float]
    reward: float
    episode: int
    old_logp: float = 0.0
    old_value: float = 0.0
    advantage: float = 0.0
    ret: float = 0.0


#: A rollout: (model, tokenizer, update index) -> episodes; the GP task's is the default.
RolloutFn = Callable[[nn.Module, object, int], list[Episode]]


class PPOTrainer:
    """PPO on a causal LM with a value head; `train(to_step)` resumes from the run folder."""

    def __init__(self, model, tokenizer, opts: PPOOptions, run_dir: str | os.PathLike,
                 rollout: RolloutFn, value_head: ValueHead | None = None):
        self.opts, self.tokenizer, self.rollout = opts, tokenizer, rollout
        self.run_dir = Path(run_dir)
        self.device = resolve_device(opts.device)
        self.model = model.to(self.device)
        self.model.float()  # float32 master weights; bf16 autocast on CUDA
        if value_head is None:
            seed_all(opts.seed)
            value_head = ValueHead(model.config.get_text_config().hidden_size)
        self.value_head = value_head.to(self.device)
        head_ids = {id(p) for p in self.value_head.parameters()}
        groups = [{"params": [p for p in self._params() if id(p) not in head_ids], "lr": opts.lr},
                  {"params": list(self.value_head.parameters()), "lr": opts.value_lr or opts.lr}]
        self.optimizer = torch.optim.Adam(groups, lr=opts.lr, eps=opts.adam_eps)
        self.step = 0
        self.history: list[dict] = []

    def _params(self) -> list[nn.Parameter]:
        seen, out = set(), []
        for p in list(self.model.parameters()) + list(self.value_head.parameters()):
            if id(p) not in seen and p.requires_grad:
                seen.add(id(p))
                out.append(p)
        return out

    def _autocast(self):
        if self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        import contextlib

        return contextlib.nullcontext()

    # ------------------------------------------------------------ forward
    def evaluate_actions(self, samples: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
        """(sequence log-probs, values) of the samples' replies under the current model."""
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        lengths = [len(s.context_ids) + len(s.reply_ids) for s in samples]
        width = max(lengths)
        ids = torch.full((len(samples), width), pad, dtype=torch.long)
        att = torch.zeros((len(samples), width), dtype=torch.long)
        for i, s in enumerate(samples):  # right padding: positions start at 0 for every row
            seq = s.context_ids + s.reply_ids
            ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            att[i, : len(seq)] = 1
        ids, att = ids.to(self.device), att.to(self.device)
        with self._autocast():
            hidden = self.model.base_model(input_ids=ids, attention_mask=att).last_hidden_state
            rows, cols, toks, wts = [], [], [], []
            for i, s in enumerate(samples):
                c = len(s.context_ids)
                for j, tok in enumerate(s.reply_ids):
                    rows.append(i)
                    cols.append(c - 1 + j)
                    toks.append(tok)
                    wts.append(s.weights[j])
            last = torch.tensor([len(s.context_ids) - 1 for s in samples], device=self.device)
            values = self.value_head(hidden[torch.arange(len(samples), device=self.device), last])
            logp = torch.zeros(len(samples), device=self.device, dtype=torch.float32)
            if rows:
                r = torch.tensor(rows, device=self.device)
                logits = self.model.get_output_embeddings()(hidden[r, torch.tensor(cols, device=self.device)])
                lp = torch.log_softmax(logits.float() / self.opts.temperature, dim=-1)
                tok_lp = lp.gather(1, torch.tensor(toks, device=self.device).unsqueeze(1)).squeeze(1)
                logp = logp.index_add(0, r, tok_lp * torch.tensor(wts, device=self.device, dtype=torch.float32))
        return logp, values.float()

    # ------------------------------------------------------------ one update
    def _buffer(self, episodes: list[Episode]) -> list[Sample]:
        out = []
        for e, ep in enumerate(episodes):
            for t in ep.turns:
                w = thought_weights(self.tokenizer, t.reply_ids, self.opts.thought_prob_coef)
                out.append(Sample(t.context_ids, t.reply_ids, w, t.reward, e))
        return out

    def update(self) -> dict:
        """One rollout + PPO epochs; returns the step's log entry."""
        o = self.opts
        t0 = time.perf_counter()
        step = self.step + 1
        torch.manual_seed(o.seed * 1_000_003 + step)
        self.model.eval()
        with torch.no_grad(), self._autocast():
            episodes = self.rollout(self.model, self.tokenizer, step)
        buf = self._buffer(episodes)
        chunk = 64
        with torch.no_grad():
            for s0 in range(0, len(buf), chunk):
                part = buf[s0 : s0 + chunk]
                logp, val = self.evaluate_actions(part)
                for s, lp, v in zip(part, logp.tolist(), val.tolist()):
                    s.old_logp, s.old_value = lp, v
        by_ep: dict[int, list[Sample]] = {}
        for s in buf:
            by_ep.setdefault(s.episode, []).append(s)
        for samples in by_ep.values():
            adv, ret = gae([s.reward for s in samples], [s.old_value for s in samples], o.gamma, o.lam)
            for s, a, r in zip(samples, adv, ret):
                s.advantage, s.ret = a, r
        advs = np.array([s.advantage for s in buf], dtype=np.float64)
        mean, std = advs.mean(), advs.std()
        for s in buf:
            s.advantage = float((s.advantage - mean) / (std + 1e-8))
        self.model.train()
        pg_losses, v_losses, clipfracs, kls = [], [], [], []
        for epoch in range(o.epochs):
            order = np.random.default_rng([o.seed, step, epoch]).permutation(len(buf))
            for idx in np.array_split(order, min(o.minibatches, len(buf))):
                mb = [buf[i] for i in idx]
                new_logp, new_v = self.evaluate_actions(mb)
                dev = self.device
                pg, vloss, stats = ppo_losses(
                    new_logp, torch.tensor([s.old_logp for s in mb], device=dev),
                    torch.tensor([s.advantage for s in mb], device=dev), new_v,
                    torch.tensor([s.old_value for s in mb], device=dev), torch.tensor([s.ret for s in mb], device=dev),
                    o.clip_range, o.value_clip_range,
                )
                loss = pg + o.vf_coef * vloss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self._params(), o.max_grad_norm)
                self.optimizer.step()
                pg_losses.append(float(pg.detach()))
                v_losses.append(float(vloss.detach()))
                clipfracs.append(stats["clip_fraction"])
                kls.append(stats["approx_kl"])
        self.model.eval()
        self.step = step
        returns = np.array([ep.ret(o.gamma) for ep in episodes])
        entry = {
            "step": step,
            "reward_mean": float(returns.mean()),
            "reward_std": float(returns.std(ddof=1)) if len(returns) > 1 else 0.0,
            "success_rate": float(np.mean([ep.solved for ep in episodes])),
            "success_rate_at_1": float(np.mean([ep.first_correct for ep in episodes])),
            "attempts_mean": float(np.mean([len(ep.turns) for ep in episodes])),
            "kl": float(np.mean(kls[-max(1, len(kls) // o.epochs):])),
            "completion_length": float(np.mean([sum(len(t.reply_ids) for t in ep.turns) for ep in episodes])),
            "loss": float(np.mean(pg_losses) + o.vf_coef * np.mean(v_losses)),
            "pg_loss": float(np.mean(pg_losses)),
            "value_loss_first": v_losses[0],
            "value_loss": float(np.mean(v_losses)),
            "value_mean": float(np.mean([s.old_value for s in buf])),
            "clip_fraction": float(np.mean(clipfracs)),
            "replies": len(buf),
            "step_time": round(time.perf_counter() - t0, 4),
        }
        self.history.append(entry)
        LOG.info("PPO step %d: %s", step, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in entry.items()}))
        return entry

    # ------------------------------------------------------------ state
    def save(self) -> Path:
        """Full state at the current step: checkpoint-<step>/ (written aside, then renamed, then COMPLETE)."""
        final = self.run_dir / f"checkpoint-{self.step}"
        tmp = self.run_dir / f".checkpoint-{self.step}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.model.save_pretrained(str(tmp))
        self.value_head.save(tmp / VALUE_HEAD_DIR)
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "trainer_state.json").write_text(json.dumps({"global_step": self.step, "log_history": self.history}, indent=1) + "\n")
        shutil.rmtree(final, ignore_errors=True)  # an incomplete earlier attempt at this step
        os.replace(tmp, final)
        (final / COMPLETE).write_text("ok\n")
        return final

    @classmethod
    def from_checkpoint(cls, ckpt: str | os.PathLike, tokenizer, opts: PPOOptions, run_dir, rollout: RolloutFn) -> "PPOTrainer":
        from transformers import AutoModelForCausalLM

        ckpt = Path(ckpt)
        model = AutoModelForCausalLM.from_pretrained(str(ckpt), dtype=torch.float32)
        trainer = cls(model, tokenizer, opts, run_dir, rollout, value_head=ValueHead.load(ckpt / VALUE_HEAD_DIR))
        trainer.optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location=trainer.device, weights_only=True))
        state = json.loads((ckpt / "trainer_state.json").read_text())
        trainer.step, trainer.history = int(state["global_step"]), list(state["log_history"])
        return trainer

    def train(self, to_step: int) -> None:
        """Update until `to_step`, saving every `save_every` updates and at `to_step`."""
        from rlheals.train import preempt

        preempt.install()
        while self.step < to_step:
            self.update()
            stop = self.step < to_step and preempt.stop_requested(self.step)
            if stop or self.step % self.opts.save_every == 0 or self.step == to_step:
                self.save()
            if stop:
                raise preempt.Stopped("PPO", self.step, self.run_dir)


# ---------------------------------------------------------------- the workflow's entry point
def gp_rollout(prompts: list[dict], opts: PPOOptions, style: str) -> RolloutFn:
    """The GP task's rollout: a seeded draw of `batch_size` hands per update, multi-turn episodes."""
    episode = EpisodeOptions(attempts=opts.attempts, style=style, temperature=opts.temperature,
                             max_new_tokens=opts.max_completion_length, reward=opts.reward, gamma=opts.gamma,
                             batch_size=max(opts.batch_size, 1))

    def rollout(model, tokenizer, step: int) -> list[Episode]:
        rng = np.random.default_rng([opts.seed, step])
        idx = rng.choice(len(prompts), size=opts.batch_size, replace=opts.batch_size > len(prompts))
        chosen = [prompts[int(i)] for i in idx]
        return run_episodes(model, tokenizer, [r["prompt"] for r in chosen], [(r["cards"], r["rule"]) for r in chosen], episode)

    return rollout


def run_key(start_dir: str, prompts: str, opts: PPOOptions, device: str) -> dict:
    """Everything that decides a PPO fork: options, start model, prompts, the code it runs
    (this module's import closure) and the hardware's precision and process count."""
    return {
        "algo": "ppo",
        "opts": opts.run_key(),
        "start": dir_identity(start_dir),
        "start_path": str(Path(start_dir).resolve()),
        "prompts": file_digest(prompts),
        "code": code_digest("rlheals.train.ppo"),
        "compute": compute_identity(device),
    }


def _trainer_at(target: int, start_dir: str, tokenizer, prompts: list[dict], run_dir: Path, opts: PPOOptions) -> PPOTrainer:
    from transformers import AutoModelForCausalLM

    style = "compact" if isinstance(prompts[0]["prompt"], str) else "chat"
    rollout = gp_rollout(prompts, opts, style)
    start, ckpt = latest_at_most(run_dir, target)
    if ckpt is not None:
        LOG.info("PPO resumes at step %d (%s)", start, ckpt)
        return PPOTrainer.from_checkpoint(ckpt, tokenizer, opts, run_dir, rollout)
    LOG.info("PPO starts from %s (run %s)", start_dir, run_dir)
    model = AutoModelForCausalLM.from_pretrained(start_dir, dtype=torch.float32)
    return PPOTrainer(model, tokenizer, opts, run_dir, rollout)


def train_ppo(start_dir: str, prompts_path: str, keep_steps: list[int], out_dirs: list[str], table_path: str,
              run_root: str, opts: PPOOptions) -> None:
    """Train one PPO fork to max(keep_steps) (resuming), export each kept step, write its table."""
    import pandas as pd

    from rlheals.atomic import atomic_path, read_jsonl, write_csv
    from rlheals.train.rl import RL_COLUMNS

    if len(keep_steps) != len(out_dirs):
        raise ValueError(f"{len(keep_steps)} kept steps but {len(out_dirs)} output folders")
    set_threads(opts.threads)
    prompts = read_jsonl(prompts_path)
    if not prompts or any(k not in prompts[0] for k in ("prompt", "cards", "rule")):
        raise ValueError(f"{prompts_path}: expected records with 'prompt', 'cards' and 'rule'")
    tok = load_tokenizer(start_dir, padding_side="left")
    with open_run(run_root, run_key(start_dir, prompts_path, opts, resolve_device(opts.device))) as run_dir:
        # Each kept step is exported as soon as it is trained, so that compute.save_total_limit
        # can delete older states as training goes (a pruned step is trained again if needed).
        for k, out in sorted(zip(keep_steps, out_dirs)):
            if k not in complete_checkpoints(run_dir):
                trainer = _trainer_at(k, start_dir, tok, prompts, run_dir, opts)
                trainer.train(k)
            export(complete_checkpoints(run_dir)[k], out, tok)
            prune_states(run_dir, opts.save_total_limit, keep=k)
        history = json.loads((complete_checkpoints(run_dir)[max(keep_steps)] / "trainer_state.json").read_text())["log_history"]
    frame = pd.DataFrame(history)
    extra = [c for c in frame.columns if c not in RL_COLUMNS]
    write_csv(table_path, frame.reindex(columns=RL_COLUMNS + extra))


def export(ckpt: str | os.PathLike, out: str | os.PathLike, tokenizer) -> None:
    """A normal HF folder of the policy, with the value head in `value_head/` beside the weights."""
    from transformers import AutoModelForCausalLM

    from rlheals.atomic import atomic_path

    ckpt = Path(ckpt)
    with atomic_path(out, is_dir=True) as tmp:
        AutoModelForCausalLM.from_pretrained(str(ckpt), dtype=torch.float32).save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        shutil.copytree(ckpt / VALUE_HEAD_DIR, Path(tmp) / VALUE_HEAD_DIR)
