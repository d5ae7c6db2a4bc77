"""Local transformers models on the CPU (`hf/<name-or-path>?gguf_file=...&prefill=...`).

Logprob mode reads P("A") from one forward pass per prompt; prompts are batched (left
padding) and each batch's shared token prefix is computed once and reused through the
KV cache. Sample mode decodes with a torch generator seeded from the query, so the same
query always gets the same text. torch and transformers are imported lazily.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import inspect
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

from pydantic import Field

from valuescope.common.seeds import stable_seed
from valuescope.errors import MissingDependencyError, ValuescopeError
from valuescope.models.base import Answer, Query
from valuescope.models.labels import space_lead
from valuescope.models.params import Flag, ModelParams, Whole, validate_params
from valuescope.models.streams import shared_length

PIP_LINE = 'pip install "valuescope[hf]"'
DTYPES = ("float32", "bfloat16", "float16")
ANSWER_LABELS = ("A", "B")
# Below this many shared tokens a batch is run without the prefix cache.
MIN_PREFIX = 8
# Prompts per forward pass: the fastest of 8, 16, 32 for SmolLM2 on 2 cores in 3 of 4 runs.
DEFAULT_BATCH = 32

Messages = Sequence[tuple[str, str]] | Sequence[Mapping[str, str]]


def _require_torch() -> tuple[Any, Any]:
    """Import torch and transformers, or fail with the pip line."""
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingDependencyError(
            f"hf/ models need torch and transformers ({exc.name} is missing): {PIP_LINE}"
        ) from None
    return torch, transformers


def answer_token_ids(tokenizer: Any, labels: Sequence[str] = ANSWER_LABELS) -> dict[str, list[int]]:
    """Single-token encodings of each label, with and without a leading space.

    Every kept id is checked to decode back to the label, and the labels must not share
    an id; a tokenizer that cannot spell a label as one token is an error.
    """
    ids: dict[str, list[int]] = {}
    for label in labels:
        found: list[int] = []
        for variant in (" " + label, label):
            enc = tokenizer.encode(variant, add_special_tokens=False)
            if len(enc) == 1 and tokenizer.decode(enc).strip() == label and enc[0] not in found:
                found.append(enc[0])
        if not found:
            raise ValuescopeError(f"the tokenizer has no single token for the answer {label!r}")
        ids[label] = found
    seen = [i for found in ids.values() for i in found]
    if len(seen) != len(set(seen)):
        raise ValuescopeError(f"answer labels share a token id: {ids}")
    return ids


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix every row shares."""
    return min(shared_length(rows[0], row) for row in rows)


class HFBackend:
    """A transformers causal LM answering forced-choice queries on the CPU.

    Parameters
    ----------
    model, tokenizer : a loaded causal LM and its tokenizer (with a chat template).
    name : str, the model string (cache key); answer-changing settings belong in it.
    prefill : str, default="", text appended after the assistant turn's start.
    seed : int, default=0, mixed into every sampling seed.
    batch_size : int, default=DEFAULT_BATCH, prompts per forward pass.
    prefix_cache : bool, default=True, compute a batch's shared prefix once.
    threads : int or None, default=None, torch threads while answering (None: torch's).
    """

    supports_logprobs = True

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        prefill: str = "",
        seed: int = 0,
        batch_size: int = DEFAULT_BATCH,
        prefix_cache: bool = True,
        threads: int | None = None,
    ) -> None:
        self.torch, _ = _require_torch()
        if not getattr(tokenizer, "chat_template", None):
            raise ValuescopeError(f"{name}: the tokenizer has no chat template")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.prefill = prefill
        self.seed = seed
        self.batch_size = batch_size
        self.prefix_cache = prefix_cache
        self.threads = threads
        self.answer_ids = answer_token_ids(tokenizer)
        self._label_ids = {ANSWER_LABELS: (self.answer_ids["A"], self.answer_ids["B"])}
        self._lead: dict[tuple[str, str], list[int]] = {}
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = tokenizer.eos_token_id or 0
        self.stop_ids = self._stop_ids()
        params = inspect.signature(model.forward).parameters
        self._keep = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), "")

    # -- prompts ---------------------------------------------------------------------
    def encode(self, messages: Messages, prefill: str | None = None) -> list[int]:
        """Token ids of the chat-templated prompt, ready for the assistant's answer."""
        chat = [m if isinstance(m, Mapping) else {"role": m[0], "content": m[1]} for m in messages]
        try:
            text = self.tokenizer.apply_chat_template(
                chat, add_generation_prompt=True, tokenize=False
            )
        except Exception:  # templates without a system role: fold it into the first turn
            if not chat or chat[0]["role"] != "system" or len(chat) < 2:
                raise
            merged = {"role": chat[1]["role"], "content": chat[0]["content"] + "\n\n"}
            merged["content"] += chat[1]["content"]
            text = self.tokenizer.apply_chat_template(
                [merged, *chat[2:]], add_generation_prompt=True, tokenize=False
            )
        text += self.prefill if prefill is None else prefill
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def label_ids(self, labels: tuple[str, str]) -> tuple[list[int], list[int]]:
        """Token ids of the first and the second answer label (`answer_token_ids`)."""
        if labels not in self._label_ids:
            ids = answer_token_ids(self.tokenizer, labels)
            self._label_ids[labels] = (ids[labels[0]], ids[labels[1]])
        return self._label_ids[labels]

    def label_lead(self, labels: tuple[str, str]) -> list[int]:
        """Tokens put after the prefill so that a logprob answer is the label's token."""
        if labels not in self._lead:
            tokenize = functools.partial(self.tokenizer.encode, add_special_tokens=False)
            self._lead[labels] = space_lead(tokenize, self.prefill, labels)
        return self._lead[labels]

    # -- the Backend protocol -----------------------------------------------------------
    def answer(self, queries: Sequence[Query]) -> list[Answer]:
        """Answer a batch of queries in order (logprob and sample queries may mix)."""
        out: list[Answer | None] = [None] * len(queries)
        prompts = [
            self.encode(q.messages) + (self.label_lead(q.labels) if q.mode == "logprob" else [])
            for q in queries
        ]
        logprob = [i for i, q in enumerate(queries) if q.mode == "logprob"]
        if logprob:
            probs = self.next_token_probs([prompts[i] for i in logprob])
            p_a, p_b = [], []
            for j, i in enumerate(logprob):
                a_ids, b_ids = self.label_ids(queries[i].labels)
                p_a.append(float(probs[j, a_ids].sum()))
                p_b.append(float(probs[j, b_ids].sum()))
            for j, i in enumerate(logprob):
                mass = p_a[j] + p_b[j]
                share = p_a[j] / mass if mass > 0 else 0.5
                out[i] = Answer(p_a=share, mass=mass, tokens_in=len(prompts[i]))
        sample = [i for i, q in enumerate(queries) if q.mode == "sample"]
        if sample:
            texts = self.sample(
                [prompts[i] for i in sample],
                [queries[i].max_tokens for i in sample],
                [queries[i].temperature for i in sample],
                [self._query_seed(queries[i]) for i in sample],
            )
            for i, (text, n_out) in zip(sample, texts):
                out[i] = Answer(
                    text=self.prefill + text, tokens_in=len(prompts[i]), tokens_out=n_out
                )
        return out  # type: ignore[return-value]

    def generate(
        self,
        messages: Messages | Sequence[Messages],
        max_tokens: int = 256,
        temperature: float = 1.0,
        seed: int = 0,
        *,
        prefill: str = "",
    ) -> str | list[str]:
        """Free text (no forced-choice prefill unless given).

        One chat gives a string; a sequence of chats (the Backend `generate` form) gives
        a list of strings, in order, each decoded with `seed`.
        """
        single = bool(messages) and (
            isinstance(messages[0], Mapping) or isinstance(messages[0][0], str)
        )
        chats = [messages] if single else list(messages)
        prompts = [self.encode(m, prefill=prefill) for m in chats]
        n = len(prompts)
        done = self.sample(prompts, [max_tokens] * n, [temperature] * n, [seed] * n)
        texts = [prefill + text for text, _ in done]
        return texts[0] if single else texts

    # -- forward passes -------------------------------------------------------------------
    def next_token_probs(self, prompts: Sequence[Sequence[int]]) -> Any:
        """Next-token probabilities after each prompt, shape (len(prompts), vocab)."""
        torch = self.torch
        rows: list[Any] = [None] * len(prompts)
        with torch.inference_mode(), self._with_threads():
            chunks, base = self._plan(prompts)
            for chunk in chunks:
                logits, *_ = self._start([prompts[i] for i in chunk], base)
                probs = torch.softmax(logits.float(), dim=-1)
                for j, i in enumerate(chunk):
                    rows[i] = probs[j]
        return torch.stack(rows)

    def sample(
        self,
        prompts: Sequence[Sequence[int]],
        max_tokens: Sequence[int],
        temperatures: Sequence[float],
        seeds: Sequence[int],
    ) -> list[tuple[str, int]]:
        """Decode each prompt with its own seeded generator: (text, tokens generated)."""
        torch = self.torch
        out: list[tuple[str, int]] = [("", 0)] * len(prompts)
        with torch.inference_mode(), self._with_threads():
            chunks, base = self._plan(prompts)
            for chunk in chunks:
                gens = [torch.Generator().manual_seed(seeds[i] % 2**63) for i in chunk]
                tokens = self._decode_batch(
                    [prompts[i] for i in chunk],
                    [max_tokens[i] for i in chunk],
                    [temperatures[i] for i in chunk],
                    gens,
                    base,
                )
                for i, ids in zip(chunk, tokens):
                    out[i] = (self.tokenizer.decode(ids, skip_special_tokens=True), len(ids))
        return out

    def _decode_batch(self, prompts, max_tokens, temperatures, gens, base) -> list[list[int]]:
        torch = self.torch
        logits, cache, mask, pos = self._start(prompts, base)
        done = [m <= 0 for m in max_tokens]
        out: list[list[int]] = [[] for _ in prompts]
        for _ in range(max(max_tokens)):
            step = []
            for j, row in enumerate(logits.float()):
                token = self.pad_id if done[j] else self._pick(row, temperatures[j], gens[j])
                if not done[j]:
                    if token in self.stop_ids:
                        done[j] = True
                    else:
                        out[j].append(token)
                        done[j] = len(out[j]) >= max_tokens[j]
                step.append(token)
            if all(done):
                break
            mask = torch.cat([mask, mask.new_ones(len(prompts), 1)], dim=1)
            pos = pos[:, -1:] + 1
            logits, cache = self._forward(torch.tensor(step)[:, None], mask, pos, cache)
        return out

    def _pick(self, logits: Any, temperature: float, gen: Any) -> int:
        if temperature <= 0:
            return int(logits.argmax())
        probs = self.torch.softmax(logits / temperature, dim=-1)
        return int(self.torch.multinomial(probs, 1, generator=gen))

    def _plan(self, prompts: Sequence[Sequence[int]]) -> tuple[list[list[int]], Any]:
        """Batches of prompt indices, and the KV cache of the prefix all prompts share.

        Sorting by length keeps padding small and puts equal prompts side by side. The
        shared prefix (system prompt, template preamble) runs once per call; each batch
        extends it with whatever more its own prompts share.
        """
        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), list(prompts[i])))
        size = max(1, self.batch_size)
        chunks = [order[k : k + size] for k in range(0, len(order), size)]
        base = None
        if self.prefix_cache and len(chunks) > 1:
            shared = min(_common_prefix(prompts), len(prompts[order[0]]) - 1)
            if shared >= MIN_PREFIX:
                base = (self._prefix_kv(prompts[0][:shared], None), shared)
        return chunks, base

    def _prefix_kv(self, tokens: Sequence[int], base: tuple[Any, int] | None) -> Any:
        """KV cache of `tokens` for one row, continuing a copy of `base` (cache, length)."""
        torch = self.torch
        done, cache = (0, None) if base is None else (base[1], copy.deepcopy(base[0]))
        if len(tokens) > done:
            ids = torch.tensor([list(tokens[done:])])
            pos = torch.arange(done, len(tokens))[None]
            _, cache = self._forward(ids, torch.ones(1, len(tokens), dtype=torch.long), pos, cache)
        return cache

    def _start(self, prompts: Sequence[Sequence[int]], base: tuple[Any, int] | None = None):
        """Run a batch of prompts: (last logits, cache, attention mask, position ids).

        The batch's shared prefix runs with batch size 1 (from `base` on, when given)
        and its KV cache is repeated across rows; the suffixes are left-padded after it,
        so the padding sits between prefix and suffix and the mask and positions skip it.
        """
        torch = self.torch
        shared = _common_prefix(prompts) if self.prefix_cache and len(prompts) > 1 else 0
        shared = min(shared, min(len(p) for p in prompts) - 1)
        cache = None
        if shared >= MIN_PREFIX:
            usable = base if base is not None and base[1] <= shared else None
            cache = self._prefix_kv(prompts[0][:shared], usable)
            if hasattr(cache, "batch_repeat_interleave"):
                cache.batch_repeat_interleave(len(prompts))
            else:  # a cache type we cannot expand: run the whole prompts instead
                cache = None
        if cache is None:
            shared = 0
        tails = [list(p[shared:]) for p in prompts]
        width = max(len(t) for t in tails)
        ids = torch.tensor([[self.pad_id] * (width - len(t)) + t for t in tails])
        tail_mask = torch.tensor([[0] * (width - len(t)) + [1] * len(t) for t in tails])
        mask = torch.cat([torch.ones(len(prompts), shared, dtype=tail_mask.dtype), tail_mask], 1)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]
        logits, cache = self._forward(ids, mask, pos, cache)
        return logits, cache, mask, pos

    def _forward(self, ids, mask, pos, cache):
        kwargs = {self._keep: 1} if self._keep else {}
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=pos,
            past_key_values=cache,
            use_cache=True,
            **kwargs,
        )
        return out.logits[:, -1, :], out.past_key_values

    @contextlib.contextmanager
    def _with_threads(self):
        """Use `threads` torch threads inside the block, then restore the setting."""
        before = self.torch.get_num_threads()
        if self.threads:
            self.torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            if self.threads:
                self.torch.set_num_threads(before)

    def _query_seed(self, q: Query) -> int:
        return stable_seed("hf", self.seed, q.messages, q.sample_index, q.temperature)

    def _stop_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids.update(configured if isinstance(configured, list) else [configured])
        return {i for i in ids if i is not None}


class HFParams(ModelParams):
    """`hf/<dir, hub id or .gguf>?...`: the load and answer settings."""

    gguf_file: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    prefill: str = ""
    seed: Whole = Field(0, ge=0)
    batch: Whole = Field(DEFAULT_BATCH, ge=1)
    prefix_cache: Flag = True
    threads: Whole = Field(0, ge=0, description="torch CPU threads (0: torch's default)")


def _parse_params(name: str, params: Mapping[str, str]) -> dict[str, Any]:
    settings = validate_params(HFParams, f"hf/{name}", params)
    return {
        "gguf_file": settings.gguf_file or None,
        "dtype": settings.dtype,
        "prefill": settings.prefill,
        "seed": settings.seed,
        "batch_size": settings.batch,
        "prefix_cache": settings.prefix_cache,
        "threads": settings.threads or None,
    }


def canonical_name(name: str, gguf_file: str | None, dtype: str, prefill: str, seed: int) -> str:
    """The model string with only the settings that change answers, in a fixed order."""
    parts = {"gguf_file": gguf_file, "dtype": None if dtype == "float32" else dtype}
    parts.update(prefill=prefill or None, seed=seed or None)
    query = urlencode({k: v for k, v in parts.items() if v}, quote_via=quote)
    return f"hf/{name}" + (f"?{query}" if query else "")


# Files whose content decides the answers; the fingerprint reads their sizes, times and
# first bytes (cheap: a few MB however large the model).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".json", ".model", ".txt")
FINGERPRINT_HEAD = 1 << 20  # bytes hashed at the start of each file


def weights_fingerprint(source: str, gguf_file: str | None = None) -> str | None:
    """A short hash of the model files at `source`: it changes when the weights change.

    For every weight, config and tokenizer file: name, size, modification time and the
    sha256 of its first MiB. A hub name fingerprints its snapshot in the local cache;
    None when no local files are found.
    """
    folder = Path(source).expanduser()
    if not folder.is_dir():
        folder = _hub_snapshot(source)
        if folder is None:
            return None
    files = sorted(
        p
        for p in folder.iterdir()
        if p.suffix in WEIGHT_SUFFIXES
        and p.is_file()
        and (p.suffix != ".gguf" or gguf_file is None or p.name == gguf_file)
    )
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        info = path.stat()  # follows the hub cache's symlinks to the blobs
        digest.update(f"{path.name}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
        with path.open("rb") as f:
            digest.update(f.read(FINGERPRINT_HEAD))
    return digest.hexdigest()[:16]


def _hub_snapshot(name: str) -> Path | None:
    """The local snapshot folder of a cached hub model, if any."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(name, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def _resolve(name: str, gguf_file: str | None) -> tuple[str, str | None]:
    """(directory or hub name, gguf file): a path to a .gguf file splits into both."""
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf" and gguf_file is None:
        return str(path.parent), path.name
    if path.is_dir():
        if gguf_file and not (path / gguf_file).is_file():
            raise ValuescopeError(f"hf/{name}: no GGUF file {gguf_file!r} in {path.resolve()}")
        if not gguf_file and not (path / "config.json").is_file():
            found = ", ".join(sorted(p.name for p in path.glob("*.gguf")))
            hint = f"add ?gguf_file= (found {found})" if found else "no config.json"
            raise ValuescopeError(f"hf/{name}: {path.resolve()} is not a saved model: {hint}")
        return str(path), gguf_file
    if name.startswith(("/", ".", "~")) or path.suffix == ".gguf":
        raise ValuescopeError(f"hf/{name}: no model directory or .gguf file at {path.resolve()}")
    return name, gguf_file  # a hub name: only its local cache is searched (offline)


def load_hf(
    name: str,
    /,
    *,
    gguf_file: str | None = None,
    dtype: str = "float32",
    **options: Any,
) -> HFBackend:
    """Load a saved model directory, a .gguf file, or a cached hub model, offline.

    `options` go to `HFBackend` (prefill, seed, batch_size, prefix_cache, threads, and
    name: the cache key, else the model string with a fingerprint of the weights).
    """
    prefill, seed = options.get("prefill", ""), options.get("seed", 0)
    label = canonical_name(name, gguf_file, dtype, prefill, seed)  # as the user wrote it
    source, gguf_file = _resolve(name, gguf_file)  # before the slow imports: fail fast
    if "name" not in options:
        # the cache key: new weights at the same path must not reuse the old answers
        fingerprint = weights_fingerprint(source, gguf_file)
        options["name"] = label + (f"#weights={fingerprint}" if fingerprint else "")
    torch, transformers = _require_torch()
    kwargs: dict[str, Any] = {"local_files_only": True}
    if gguf_file:
        try:
            import gguf  # noqa: F401
        except ImportError:
            raise MissingDependencyError(f"gguf_file= needs the gguf package: {PIP_LINE}") from None
        kwargs["gguf_file"] = gguf_file
    old = tuple(int(x) for x in transformers.__version__.split(".")[:2]) < (4, 56)
    model_kwargs = {**kwargs, "torch_dtype" if old else "dtype": getattr(torch, dtype)}
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # GGUF loading prints progress bars
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
            model = transformers.AutoModelForCausalLM.from_pretrained(source, **model_kwargs)
    except (OSError, ValueError, KeyError) as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ValuescopeError(f"hf/{name}: cannot load a model from {source}: {reason}") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    return HFBackend(model, tokenizer, **options)


CHATML_TEMPLATE = (
    "{% for m in messages %}"
    "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def save_tiny_model(
    out: str | Path, corpus: Sequence[str], *, vocab: int = 1000, layers: int = 2, seed: int = 0
) -> Path:
    """Save a small randomly initialised chat model and its tokenizer (tests, benchmarks).

    The tokenizer is a byte-level BPE trained on `corpus` with a ChatML template; the
    model is a 4-head Llama with hidden size 64 and a wide weight init, so its next-token
    probabilities differ from prompt to prompt. Loads as `hf/<out>`.
    """
    torch, transformers = _require_torch()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([*corpus, "Option A", "Option B"], trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        initializer_range=0.3,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config)
    out = Path(out)
    with contextlib.redirect_stderr(io.StringIO()):  # saving prints a progress bar
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    return out


def make_hf(name: str, params: dict[str, str], **_: object) -> HFBackend:
    """Factory for `hf/<name-or-path>`; the run's seed does not reach it (see `seed=`)."""
    return load_hf(name, **_parse_params(name, params))
