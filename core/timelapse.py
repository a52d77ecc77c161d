"""The time-lapse: snapshots of a model's insides at chosen training steps, for scrubbing.

At each chosen step the recorder runs the model on one fixed probe text and stores, compactly:
every head's attention pattern (float16), the head-role scores of `core.heads`, the loss on
each probe token, a 2-D map of the token-embedding table, and a short greedy sample.

Embedding maps are PCA projections aligned across steps by orthogonal Procrustes (Schönemann
1966): each new map is rotated/reflected to best match the previous one, so a cluster that
does not move in the model does not jump between frames. PCA alone would flip axes freely.

On disk (`RUN/timelapse/`): `index.json` (format, probe text/ids/labels, one entry per frame)
and one `frame_XXXXXX.npz` per frame; the index is rewritten atomically after the frame's file
is complete, so a kill never leaves an index naming a missing frame.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from core.heads import SCORE_NAMES, head_scores
from core.runs import write_json_atomic

FORMAT = "glassbox-timelapse/1"
DEFAULT_PROBE = (
    "Once upon a time, there was a little girl named Mia. Mia had a red ball. "
    "One day, Mia went to the park with her dog Max. Max saw the red ball and ran to it. "
    "Mia was happy. Mia and Max played with the red ball all day."
)
MAX_PROBE_TOKENS = 96  # keeps each frame's attention (L, H, T, T) small


@dataclass
class Timelapse:
    """Everything recorded, stacked over S frames (arrays are numpy)."""

    steps: np.ndarray  # (S,) training step of each frame
    probe_text: str
    probe_ids: list[int]  # T ids of the probe text
    probe_labels: list[str]  # T display labels (tokenizer.token_label)
    attention: np.ndarray  # (S, L, H, T, T) float16, rows = query position
    head_scores: np.ndarray  # (S, L, H, 3) float32, last axis in score_names order
    score_names: list[str]  # ["previous_token", "first_token", "induction"]
    token_loss: np.ndarray  # (S, T) float32; [s, t] = -log p(id_t | ids_<t); NaN at t = 0
    embedding: np.ndarray  # (S, V, 2) float32, Procrustes-aligned PCA of tok_emb
    samples: list[str]  # (S,) greedy continuation of the sample prompt at each frame
    sample_prompt: str

    def formed_at(self, role: str, threshold: float = 0.4) -> int | None:
        """First step at which some head's `role` score reaches `threshold` (None if never)."""
        k = self.score_names.index(role)
        best = self.head_scores[..., k].reshape(len(self.steps), -1).max(axis=1)
        hit = np.nonzero(best >= threshold)[0]
        return int(self.steps[hit[0]]) if len(hit) else None


def pca_2d(matrix: np.ndarray) -> np.ndarray:
    """(N, C) -> (N, 2): projection on the top two principal components."""
    x = matrix.astype(np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def procrustes_align(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Rotate/reflect `points` (N, 2) by the orthogonal R minimising ||points @ R - reference||."""
    u, _, vt = np.linalg.svd(points.T @ reference)
    return points @ (u @ vt)


class TimelapseRecorder:
    """Writes frames into `folder` while a Trainer runs (rank 0 only)."""

    def __init__(self, folder, model_config, tokenizer, train_cfg):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer = tokenizer
        self.n_layers = model_config.n_layers
        text = train_cfg.timelapse_text or DEFAULT_PROBE
        ids = tokenizer.encode(text)[: min(MAX_PROBE_TOKENS, model_config.context_length)]
        self._fresh = {
            "format": FORMAT,
            "probe_text": tokenizer.decode(ids),
            "probe_ids": ids,
            "probe_labels": [tokenizer.token_label(i) for i in ids],
            "score_names": list(SCORE_NAMES),
            "sample_prompt": train_cfg.sample_prompt,
            "frames": [],
        }
        index_path = self.folder / "index.json"
        self.index = self._new_index()
        if index_path.exists():
            old = json.loads(index_path.read_text(encoding="utf-8"))
            # a resumed run keeps its frames; another run's probe (another tokenizer, context
            # or probe text: it could be too long for this model) is not reused
            if old.get("frames") and old.get("probe_ids") == ids:
                self.index = old
            elif old.get("frames"):  # frames of another probe: not comparable, they go
                write_json_atomic(index_path, self.index)  # first, so no index names them
                for f in old["frames"]:
                    (self.folder / Path(f["file"]).name).unlink(missing_ok=True)
        self._prev_map = None
        if self.index["frames"]:
            last = self.index["frames"][-1]["file"]
            with np.load(self.folder / last) as z:
                self._prev_map = z["embedding"].astype(np.float64)

    def _new_index(self) -> dict:
        return {**self._fresh, "frames": []}

    @property
    def steps(self) -> list[int]:
        return [f["step"] for f in self.index["frames"]]

    def truncate(self, step: int) -> None:
        """Forget frames after `step` (a resumed run re-records them)."""
        keep = [f for f in self.index["frames"] if f["step"] <= step]
        for f in self.index["frames"][len(keep) :]:
            (self.folder / f["file"]).unlink(missing_ok=True)
        self.index["frames"] = keep
        if not keep:  # nothing left of the old run: this run's probe and prompt from now on
            self.index = self._new_index()
        write_json_atomic(self.folder / "index.json", self.index)
        self._prev_map = None
        if keep:
            with np.load(self.folder / keep[-1]["file"]) as z:
                self._prev_map = z["embedding"].astype(np.float64)

    @torch.no_grad()
    def record(self, model, step: int) -> dict:
        """Record one frame; returns the TimelapseEvent fields (frame, head_scores, probe_loss)."""
        from core.probes import capture
        from core.sampling import generate

        was_training = model.training
        model.eval()
        try:
            ids = self.index["probe_ids"]
            logits, cache = capture(model, ids, names=["blocks.*.attn.pattern"])
            att = np.stack(
                [cache[f"blocks.{i}.attn.pattern"][0].numpy() for i in range(self.n_layers)]
            )  # (L, H, T, T)
            t_ids = torch.tensor(ids)
            nll = F.cross_entropy(logits[0, :-1], t_ids[1:], reduction="none").numpy()
            token_loss = np.concatenate([[np.nan], nll]).astype(np.float32)  # (T,)
            eot = getattr(self.tokenizer, "eot_id", None)
            scores = head_scores(model, batch=4, prefix_id=eot, seed=1234)
            stacked = np.stack([scores[k] for k in SCORE_NAMES], axis=-1)  # (L, H, 3)
            emb = pca_2d(model.tok_emb.weight.detach().float().cpu().numpy())
            if self._prev_map is not None and self._prev_map.shape == emb.shape:
                emb = procrustes_align(emb, self._prev_map)
            self._prev_map = emb
            prompt = self.index["sample_prompt"] or "Once upon a time"
            gen = generate(model, self.tokenizer.encode(prompt), max_new_tokens=24, temperature=0)
            sample = self.tokenizer.decode(gen.new_ids)
        finally:
            model.train(was_training)
        name = f"frame_{step:06d}.npz"
        np.savez_compressed(
            self.folder / name,
            attention=att.astype(np.float16),
            head_scores=stacked.astype(np.float32),
            token_loss=token_loss,
            embedding=emb.astype(np.float32),
        )
        probe_loss = float(np.nanmean(token_loss)) if len(ids) > 1 else math.nan
        self.index["frames"] = [f for f in self.index["frames"] if f["step"] != step]
        self.index["frames"].append(
            {"step": step, "file": name, "sample": sample, "probe_loss": probe_loss}
        )
        self.index["frames"].sort(key=lambda f: f["step"])
        write_json_atomic(self.folder / "index.json", self.index)
        return {
            "frame": self.steps.index(step),
            "head_scores": {k: scores[k].tolist() for k in SCORE_NAMES},
            "probe_loss": probe_loss,
        }


def load_timelapse(run_dir: str | Path) -> Timelapse:
    """Read RUN/timelapse into stacked arrays. FileNotFoundError when a run has none."""
    folder = Path(run_dir) / "timelapse"
    index_path = folder / "index.json"
    if not index_path.exists():
        raise FileNotFoundError(f"{run_dir} has no time-lapse (no timelapse/index.json)")
    index = json.loads(index_path.read_text(encoding="utf-8"))
    if index.get("format") != FORMAT:
        raise ValueError(f"unknown time-lapse format {index.get('format')!r}")
    frames = index["frames"]
    att, scores, loss, emb = [], [], [], []
    for f in frames:
        with np.load(folder / f["file"]) as z:
            att.append(z["attention"])
            scores.append(z["head_scores"])
            loss.append(z["token_loss"])
            emb.append(z["embedding"])
    T = len(index["probe_ids"])

    def stack(xs, shape, dtype):
        return np.stack(xs).astype(dtype) if xs else np.zeros(shape, dtype)

    return Timelapse(
        steps=np.array([f["step"] for f in frames], dtype=np.int64),
        probe_text=index["probe_text"],
        probe_ids=list(index["probe_ids"]),
        probe_labels=list(index["probe_labels"]),
        attention=stack(att, (0, 0, 0, T, T), np.float16),
        head_scores=stack(scores, (0, 0, 0, 3), np.float32),
        score_names=list(index["score_names"]),
        token_loss=stack(loss, (0, T), np.float32),
        embedding=stack(emb, (0, 0, 2), np.float32),
        samples=[f.get("sample", "") for f in frames],
        sample_prompt=index.get("sample_prompt", ""),
    )
