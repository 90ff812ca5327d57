"""Merchandising's facade: product copy drafts for merchandisers (descriptions, marketing lines and e-mail
blurbs drafted from a product's own facts, fact-checked, then edited, accepted or rejected by a person).

The code is split by concern: facts.py (what a draft may say), writing.py (prompts, the generator call,
cleaning, the template), factcheck.py (the copy rules and ml.grounding), drafts.py (the life cycle),
training.py (fine-tuning the generator on accepted copy: pairs, the promotion gate, the weekly retrain).
"""

from django.core.exceptions import ValidationError

from .drafts import (
    NEEDS_COPY_MIN_WORDS,
    PUBLISH_FIELDS,
    accept_draft,
    edit_draft,
    generate_draft,
    history,
    needs_copy_products,
    reject_draft,
    request_drafts,
    status_for,
    with_copy_words,
)
from .factcheck import AVOIDED_CLAIM_WORDS, fact_check, grounding_flags, spec_flags, words_to_avoid
from .facts import CopyFacts, gather_facts, product_facts, product_for_copy, skip_reason
from .training import (
    CopyPair,
    build_training_pairs,
    distinct_n,
    draft_pairs,
    finetune_from_file,
    finetune_pairs,
    grounded_pairs,
    read_pairs_file,
    retrain_from_drafts,
    template_similarity,
    write_pairs_file,
)
from .writing import (
    LENGTHS,
    CopyGenerationError,
    WrittenCopy,
    build_messages,
    clean_output,
    cut_at_sentence,
    template_copy,
    write_copy,
)

__all__ = [
    "AVOIDED_CLAIM_WORDS", "LENGTHS", "NEEDS_COPY_MIN_WORDS", "PUBLISH_FIELDS", "CopyFacts", "CopyGenerationError",
    "CopyPair", "build_training_pairs", "distinct_n", "draft_pairs", "finetune_from_file", "finetune_pairs",
    "grounded_pairs", "read_pairs_file", "retrain_from_drafts", "template_similarity", "write_pairs_file",
    "ValidationError", "WrittenCopy", "accept_draft", "build_messages", "clean_output", "cut_at_sentence",
    "edit_draft", "fact_check", "gather_facts", "generate_draft", "grounding_flags", "history",
    "needs_copy_products", "product_facts", "product_for_copy", "reject_draft", "request_drafts", "skip_reason",
    "spec_flags", "status_for", "template_copy", "with_copy_words", "words_to_avoid", "write_copy",
]
