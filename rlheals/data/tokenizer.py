"""A tokenizer built locally (no hub): lossless, small, and short on this task's text.

Every printable ASCII character (plus newline and tab) is a token, so any prompt the
project writes round-trips exactly: ``decode(encode(s)) == s``. On top of that, whole
numbers of one or two digits and the words the task and the pretraining corpus use are
single tokens, each with and without one leading space (as GPT-style tokenizers do).
That keeps the numbers 1..13 and 24 atomic, which is what the arithmetic leans on, and
makes a compact prompt plus answer about 2.5x shorter than a pure character tokenizer
(see ``tests/test_models.py``), which is what makes pretraining fit in a few CPU minutes.
Longer digit runs and unknown words fall back to characters.
"""
from __future__ import annotations

import re
import string

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = [PAD, BOS, EOS, UNK]

#: Characters that are always single tokens: printable ASCII (incl. space), newline, tab.
CHARS = [c for c in string.printable if c not in "\r\x0b\x0c"]

#: Words that are one token each (with and without a leading space). Lower-risk to keep
#: generous: a word missing here only costs sequence length, never correctness.
WORDS = sorted(
    {
        "Cards", "cards", "card", "Card", "Answer", "answer", "numbers", "number", "Numbers",
        "formula", "Formula", "rule", "Rule", "rules", "value", "values", "Value", "is", "are",
        "count", "counts", "as", "and", "the", "The", "each", "Each", "use", "Use", "used",
        "once", "make", "to", "In", "in", "this", "This", "game", "with", "With", "of", "for",
        "Solve", "solve", "Read", "read", "target", "Target", "equals", "equal", "Make",
        "Hand", "hand", "face", "Face", "respectively", "Note", "that", "must", "be", "using",
        "from", "Here", "here", "under", "Under", "so", "gives", "give", "reads", "We", "we",
        "have", "has", "get", "A", "J", "Q", "K", "Cards:", "Answer:", "Rule:", "Numbers:", "Formula:", "numbers:", "formula:",
        # the verifier's feedback ("You failed this trial because you used invalid numbers: [10]"),
        # so that a 5-attempt episode fits the context the tiny model is pretrained on
        "You", "you", "failed", "trial", "because", "invalid", "unused", "did", "not", "all", "more",
        "often", "than", "allow", "evaluates", "instead", "legal", "unfinished", "correct", "start",
        "but", "no", "was", "found", "your", "illegal", "characters", "divides", "by", "zero", "an",
        "unmatched", "missing", "operator", "where", "expected", "or", "right", "after", "longer",
        "equals", "cards'",
    },
    key=lambda w: (-len(w), w),
)


def _alternation(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in words)


def split_pattern() -> str:
    """Regex whose matches, left to right, are exactly the tokens of a text."""
    number = r" ?(?<![0-9])[0-9]{1,2}(?![0-9])"
    word = rf" ?(?<![A-Za-z])(?:{_alternation(WORDS)})(?![A-Za-z])"
    return rf"{number}|{word}|[\s\S]"


def vocabulary() -> list[str]:
    """All tokens, in id order: specials, characters, numbers, words (each +/- space)."""
    vocab = list(SPECIALS) + list(CHARS)
    seen = set(vocab)
    pieces = [str(n) for n in range(100)] + list(WORDS)
    for piece in pieces:
        for tok in (piece, " " + piece):
            if tok not in seen:
                vocab.append(tok)
                seen.add(tok)
    return vocab


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The project's tokenizer for the tiny model; deterministic, needs no files."""
    vocab = {tok: i for i, tok in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(split_pattern()), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
    )


def is_project_tokenizer(tokenizer_json: dict) -> bool:
    """True for a saved tokenizer.json made by `build_tokenizer` (WordLevel + our split)."""
    return tokenizer_json.get("model", {}).get("type") == "WordLevel" and UNK in tokenizer_json.get(
        "model", {}
    ).get("vocab", {})
