"""The Trainer: pre-training a GPT on token ids, emitting events instead of printing.

What it does (Raschka ch. 5 + appendix D; minGPT's event-emitting trainer; nanoGPT's loop):
AdamW with decay only on matrices, warm-up + cosine learning rate (`core.train_config.lr_at`),
global-norm gradient clipping (the pre-clip norm and whether it clipped are recorded),
gradient accumulation derived from the global batch, fp32 or bf16 autocast, optional
activation checkpointing, periodic evaluation / samples / checkpoints / time-lapse frames,
per-layer telemetry, a divergence guard, exact resume, and DDP through `core.distributed`.

Batches: every step draws the *global* batch (batch_size random windows) from one seeded
generator on every process; rank r takes its slice and splits it into micro-batches. So the
data, hence the loss curve, does not depend on how many processes share the work, and the
data position is just that generator's state (saved in each checkpoint).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from core import distributed as D
from core import runs
from core.batches import draw_batch, make_windows
from core.cpualloc import keep_freed_memory
from core.events import (
    CheckpointEvent,
    DivergedEvent,
    DoneEvent,
    EvalEvent,
    Event,
    JsonlLogger,
    SampleEvent,
    StartEvent,
    StepEvent,
    TimelapseEvent,
)
from core.train_config import TrainConfig, lr_at
from core.train_state import (
    block_params,
    enable_activation_checkpointing,
    param_groups,
    resolve_device,
    tensors_norm,
)

Subscriber = Callable[[Event], None]


def _id_tensor(ids) -> torch.Tensor:
    """The corpus as a tensor in its compact dtype (uint16 for vocabularies up to 65536, as
    core.data stores it: a quarter of int64's memory); batches are widened to int64."""
    arr = np.asarray(ids)
    if arr.dtype not in (np.uint16, np.uint32, np.int32, np.int64):
        arr = arr.astype(np.int64)
    if not arr.flags.writeable or not arr.flags.c_contiguous:  # a read-only memmap, a slice
        arr = np.array(arr, order="C")  # one copy, in the compact dtype
    return torch.from_numpy(arr)


class Trainer:
    """Train `model` on `train_ids`, evaluating on `val_ids`.

    run_dir: where checkpoints, log.jsonl, run.json and the time-lapse go (rank 0 only);
    None keeps everything in memory (tests, notebooks). Subscribers are called with each
    event in the training thread; `stop()` may be called from any thread and ends the run
    after the current step with a checkpoint.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        train_ids: np.ndarray,
        val_ids: np.ndarray,
        config: TrainConfig,
        *,
        tokenizer=None,
        run_dir: str | Path | None = None,
        subscribers: list[Subscriber] | None = None,
        dist: D.DistInfo = D.SINGLE,
        command: str = "",
        log: bool = True,
        init_from: dict | None = None,
    ):
        self.cfg = config
        # a fine-tune: where the starting weights came from (core.checkpoint.load_base), kept in
        # run.json and every checkpoint; its run evaluates once before the first step, so the
        # curve starts at the base model's loss on the new text
        self.init_from = dict(init_from) if init_from else None
        self.dist = dist
        self.device = resolve_device(config.device)
        if self.device.type == "cpu":
            keep_freed_memory()  # reuse each step's activation pages (core/cpualloc.py)
        self.model = model.to(self.device)
        self.tokenizer = tokenizer
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.command = command
        # provenance for the checkpoints: the code's commit ('+dirty' if edited), None outside git
        self.commit = runs.git_commit() if self.run_dir is not None and dist.is_main else None
        self.subscribers: list[Subscriber] = list(subscribers or [])
        self.seq_len = config.window(model.config.context_length)
        self.micro = config.micro_batch(dist.world_size)
        self.accum = config.grad_accum_steps(dist.world_size)
        self.tokens_per_step = config.batch_size * self.seq_len
        self.train_ids, self.val_ids = _id_tensor(train_ids), _id_tensor(val_ids)
        for name, ids in (("train", self.train_ids), ("val", self.val_ids)):
            if len(ids) < self.seq_len + 2:
                raise ValueError(
                    f"{name} split has {len(ids)} tokens; need more than seq_len={self.seq_len}"
                )
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, config.weight_decay),
            lr=config.lr,
            betas=(config.beta1, config.beta2),
            eps=config.eps,
            # one fused kernel for all of AdamW (4x faster than foreach here: 3 vs 13 ms a step
            # at 1 thread on the small model); foreach where torch has no fused kernel
            **({"fused": True} if self.device.type in ("cpu", "cuda") else {"foreach": True}),
        )
        if config.activation_checkpointing:
            enable_activation_checkpointing(self.model)
        self.fwd = D.wrap(self.model, dist)
        if config.compile:
            self.fwd = torch.compile(self.fwd)
        self.step = 0
        self.tokens = 0
        self.data_gen = torch.Generator().manual_seed(config.seed + 1)
        self.last_eval: EvalEvent | None = None
        self.last_ckpt: Path | None = None
        self.last_loss: float | None = None
        self._stop = threading.Event()
        self._resumed = False
        self._logger = None
        self._log = log
        self.timelapse = None
        if self.run_dir is not None and dist.is_main:
            runs.ensure_writable(self.run_dir)  # a clear RunWriteError now, not a traceback later
            if config.frame_steps() and tokenizer is not None:
                from core.timelapse import TimelapseRecorder

                self.timelapse = TimelapseRecorder(
                    self.run_dir / "timelapse", model.config, tokenizer, config
                )

    # -- public control ------------------------------------------------------------------
    def subscribe(self, fn: Subscriber) -> None:
        self.subscribers.append(fn)

    def stop(self) -> None:
        """Ask the run to end after the current step (thread-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def emit(self, event: Event) -> None:
        if not self.dist.is_main:
            return
        for fn in list(self.subscribers):
            fn(event)

    # -- data ----------------------------------------------------------------------------
    def _global_batch(self):
        """This step's global batch (core.batches), drawn from one generator on every rank."""
        cfg = self.cfg
        return draw_batch(
            self.data_gen,
            len(self.train_ids),
            self.seq_len,
            cfg.batch_size,
            repeat_fraction=cfg.repeat_fraction,
            repeat_random=cfg.repeat_random,
            vocab_size=self.model.config.vocab_size,
        )

    def _windows(self, ids: torch.Tensor, starts: torch.Tensor, periods=None, random_ids=None):
        x, y = make_windows(ids, starts, self.seq_len, periods, random_ids)
        return x.to(self.device), y.to(self.device)

    def _autocast(self):
        return torch.autocast(
            device_type=self.device.type,
            dtype=torch.bfloat16,
            enabled=self.cfg.dtype == "bf16",
        )

    # -- one optimizer step --------------------------------------------------------------
    def train_step(self) -> StepEvent | DivergedEvent:
        cfg, t0 = self.cfg, time.perf_counter()
        lr = lr_at(self.step, cfg)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        starts, periods, random_ids = self._global_batch()
        per_rank = self.micro * self.accum
        mine = slice(self.dist.rank * per_rank, (self.dist.rank + 1) * per_rank)
        starts, periods = starts[mine], periods[mine]
        random_ids = random_ids[mine] if random_ids is not None else None
        self.model.train()
        loss_sum = 0.0
        for i in range(self.accum):
            part = slice(i * self.micro, (i + 1) * self.micro)
            rand = random_ids[part] if random_ids is not None else None
            x, y = self._windows(self.train_ids, starts[part], periods[part], rand)
            with D.no_sync(self.fwd, skip=i < self.accum - 1), self._autocast():
                _, loss = self.fwd(x, y, return_logits=False)  # fused LM head + loss
                loss = loss / self.accum
            loss.backward()
            loss_sum += float(loss.detach())
        loss_val = D.mean(loss_sum, self.dist, self.device)
        telemetry = cfg.telemetry_every > 0 and (self.step + 1) % cfg.telemetry_every == 0
        layer_norms = None
        if telemetry:
            layer_norms = [tensors_norm(p.grad for p in ps) for ps in block_params(self.model)]
        params = [p for p in self.model.parameters() if p.grad is not None]
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
        bad = None
        if not math.isfinite(loss_val):
            bad = f"loss is {loss_val}"
        elif not math.isfinite(grad_norm):
            bad = f"gradient norm is {grad_norm}"
        elif grad_norm > cfg.diverge_grad_norm:
            bad = f"gradient norm {grad_norm:.3g} exceeds diverge_grad_norm={cfg.diverge_grad_norm}"
        if bad:
            self.optimizer.zero_grad(set_to_none=True)
            return DivergedEvent(
                step=self.step + 1,
                reason=bad,
                loss=loss_val,
                grad_norm=grad_norm,
                last_checkpoint=str(self.last_ckpt) if self.last_ckpt else None,
            )
        before = None
        if telemetry:
            before = [[p.detach().clone() for p in ps] for ps in block_params(self.model)]
        self.optimizer.step()
        # the fused AdamW kernel writes the weights without bumping their autograd version,
        # which is how weight copies cached for decoding (core.kvcache) see a change: bump it
        torch.autograd.graph.increment_version(list(self.model.parameters()))
        self.optimizer.zero_grad(set_to_none=True)
        ratios = None
        if before is not None:
            ratios = []
            for old, ps in zip(before, block_params(self.model)):
                delta = tensors_norm([p.detach() - o for p, o in zip(ps, old)])
                ratios.append(delta / max(tensors_norm(old), 1e-12))
        self.step += 1
        self.tokens += self.tokens_per_step
        self.last_loss = loss_val
        dt = time.perf_counter() - t0
        self._elapsed += dt
        return StepEvent(
            step=self.step,
            loss=loss_val,
            lr=lr,
            grad_norm=grad_norm,
            clipped=bool(grad_norm > max_norm),
            tokens=self.tokens,
            tokens_per_s=self.tokens_per_step / dt if dt > 0 else 0.0,
            elapsed=self._elapsed,
            layer_grad_norms=layer_norms,
            update_ratios=ratios,
        )

    # -- evaluation and samples ----------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> EvalEvent:
        """Mean loss over a fixed set of windows from each split (same windows every time)."""
        self.model.eval()
        out = {}
        for name, ids in (("train", self.train_ids), ("val", self.val_ids)):
            g = torch.Generator().manual_seed(self.cfg.seed + 7)
            hi = len(ids) - self.seq_len - 1
            total = 0.0
            for _ in range(self.cfg.eval_batches):
                starts = torch.randint(0, hi + 1, (self.micro,), generator=g)
                x, y = self._windows(ids, starts)
                with self._autocast():
                    _, loss = self.model(x, y, return_logits=False)
                total += float(loss)
            out[name] = total / self.cfg.eval_batches
        self.model.train()
        ev = EvalEvent(
            step=self.step,
            train_loss=out["train"],
            val_loss=out["val"],
            train_ppl=math.exp(min(out["train"], 50.0)),
            val_ppl=math.exp(min(out["val"], 50.0)),
        )
        self.last_eval = ev
        return ev

    @torch.no_grad()
    def sample(self) -> SampleEvent | None:
        if self.tokenizer is None or not self.cfg.sample_prompt:
            return None
        from core.sampling import generate

        prompt_ids = self.tokenizer.encode(self.cfg.sample_prompt)
        self.model.eval()
        gen = generate(
            self.model,
            prompt_ids,
            max_new_tokens=self.cfg.sample_tokens,
            temperature=self.cfg.sample_temperature,
            top_k=min(50, self.model.config.vocab_size),
            seed=self.cfg.seed,
        )
        self.model.train()
        return SampleEvent(
            step=self.step,
            prompt=self.cfg.sample_prompt,
            text=self.tokenizer.decode(gen.new_ids),
            ids=list(gen.ids),
        )

    # -- checkpoints and resume ----------------------------------------------------------
    def save(self) -> Path | None:
        """Write ckpt/step_XXXXXX atomically, then point LATEST at it (rank 0 only)."""
        if self.run_dir is None or not self.dist.is_main:
            return None
        from core.checkpoint import save_checkpoint
        from core.train_state import pack_state

        path = runs.checkpoint_dir(self.run_dir, self.step)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors, extra = pack_state(self)
        meta = {
            "step": self.step,
            "tokens": self.tokens,
            "seed": self.cfg.seed,
            "command": self.command,
            "commit": self.commit,
            "train_loss": self.last_eval.train_loss if self.last_eval else self.last_loss,
            "val_loss": self.last_eval.val_loss if self.last_eval else None,
            **({"init_from": self.init_from} if self.init_from else {}),
        }
        save_checkpoint(
            path,
            self.model,
            tokenizer=self.tokenizer,
            meta=meta,
            extra_tensors=tensors,
            extra_json=extra,
            overwrite=True,
        )
        runs.mark_latest(self.run_dir, path, keep=self.cfg.keep_checkpoints)
        self.last_ckpt = path
        return path

    def resume(self, path: str | Path) -> None:
        """Restore weights, optimizer, step, RNG and data position from a checkpoint (or run dir)."""
        from core.checkpoint import load_checkpoint
        from core.train_state import unpack_state

        ckpt = load_checkpoint(path, load_extra=True)
        self.model.load_state_dict(ckpt.model.state_dict())
        unpack_state(self, ckpt.extra_tensors, ckpt.extra_json)
        self.last_ckpt = ckpt.path
        self._resumed = True
        if self.run_dir is not None and self.dist.is_main:
            runs.truncate_log(self.run_dir / "log.jsonl", self.step)
            if self.timelapse is not None:
                self.timelapse.truncate(self.step)

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> DoneEvent | DivergedEvent:
        """Train until max_steps, stop() or divergence. Returns the final event."""
        cfg, main = self.cfg, self.dist.is_main and self.run_dir is not None
        if main:
            runs.create_run(
                self.run_dir,
                model=self.model.config.to_dict(),
                train=cfg.to_dict(),
                command=self.command,
                seed=cfg.seed,
                world_size=self.dist.world_size,
                **({"init_from": self.init_from} if self.init_from else {}),
            )
            tok_file = self.run_dir / "tokenizer.json"
            if self.tokenizer is not None and (not self._resumed or not tok_file.exists()):
                self.tokenizer.save(tok_file)  # a fresh run's own, not an earlier run's
            if not self._resumed and self.step == 0:
                # starting from scratch where a killed attempt left no checkpoint: its events
                # and frames go, so the log holds one curve (resume() truncates the same way)
                runs.truncate_log(self.run_dir / "log.jsonl", -1)
                if self.timelapse is not None and self.timelapse.steps:
                    self.timelapse.truncate(-1)
            if self._log:  # opened here, after any resume() has truncated the file
                self._logger = JsonlLogger(self.run_dir / "log.jsonl")
                self.subscribers.append(self._logger)
        frames = set(cfg.frame_steps()) if self.timelapse is not None else set()
        self.emit(
            StartEvent(
                step=self.step,
                max_steps=cfg.max_steps,
                tokens_per_step=self.tokens_per_step,
                num_params=sum(p.numel() for p in self.model.parameters()),
                world_size=self.dist.world_size,
                resumed=self._resumed,
            )
        )
        try:
            if self.step in frames and self.step not in self.timelapse.steps:
                self._frame()
            if self.init_from and self.step == 0 and self.dist.is_main:
                # the base model on this text, before it adapts: its loss and what it writes
                if cfg.eval_every:
                    self.emit(self.evaluate())
                if cfg.sample_every or cfg.eval_every:
                    sample = self.sample()
                    if sample is not None:
                        self.emit(sample)
            last_beat = time.time()
            while self.step < cfg.max_steps:
                ev = self.train_step()
                if isinstance(ev, DivergedEvent):
                    self.emit(ev)
                    if main:
                        runs.set_status(self.run_dir, "diverged", final=ev.to_dict())
                    return ev
                self.emit(ev)
                s, last = self.step, self.step == cfg.max_steps
                if self.dist.is_main:
                    if cfg.eval_every and (s % cfg.eval_every == 0 or last):
                        self.emit(self.evaluate())
                    every = cfg.sample_every or cfg.eval_every
                    if every and (s % every == 0 or last):
                        sample = self.sample()
                        if sample is not None:
                            self.emit(sample)
                    if s in frames:
                        self._frame()
                stopping = D.broadcast_flag(self._stop.is_set(), self.dist, self.device)
                if (cfg.ckpt_every and s % cfg.ckpt_every == 0) or last or stopping:
                    path = self.save()
                    if path is not None:
                        self.emit(CheckpointEvent(step=s, path=str(path)))
                if main and time.time() - last_beat > cfg.heartbeat_every:
                    runs.heartbeat(self.run_dir)
                    last_beat = time.time()
                if stopping:
                    break
            status = "done" if self.step >= cfg.max_steps else "stopped"
            done = DoneEvent(
                step=self.step,
                status=status,
                train_loss=self.last_eval.train_loss if self.last_eval else self.last_loss,
                val_loss=self.last_eval.val_loss if self.last_eval else None,
                elapsed=self._elapsed,
            )
            self.emit(done)
            if main:
                runs.set_status(self.run_dir, status, final=done.to_dict())
            return done
        except BaseException as exc:
            if main:
                with contextlib.suppress(OSError):  # a full disk must not hide the first error
                    runs.set_status(self.run_dir, "interrupted", error=repr(exc)[:500])
            full = isinstance(exc, OSError) and exc.errno in runs.WRITE_ERRNOS
            if main and full and not isinstance(exc, runs.RunWriteError):
                raise runs.write_error(exc, self.run_dir, self.last_ckpt) from exc
            raise
        finally:
            if self._logger is not None:
                with contextlib.suppress(OSError):  # its last flush may hit the same full disk
                    self._logger.close()
                self.subscribers.remove(self._logger)
                self._logger = None

    def _frame(self) -> None:
        rec = self.timelapse.record(self.model, self.step)
        self.emit(TimelapseEvent(step=self.step, **rec))

    _elapsed = 0.0
